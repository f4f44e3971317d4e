package io.msm;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;

/**
 * What an ELF file says about the platform it runs on: its architecture, the program
 * interpreter an executable names (the dynamic loader, which is glibc's or musl's), and the
 * shared libraries it needs. Read from the file's headers, never guessed from its name.
 */
final class ElfFile {
    private static final int PT_LOAD = 1;
    private static final int PT_DYNAMIC = 2;
    private static final int PT_INTERP = 3;
    private static final long DT_NEEDED = 1;
    private static final long DT_STRTAB = 5;

    private final byte[] content;
    private final ByteBuffer bytes;
    private final boolean is64;
    private final int machine;
    private final List<long[]> loads = new ArrayList<>();
    private String interpreter;
    private final List<String> needed = new ArrayList<>();

    private ElfFile(byte[] content) {
        this.content = content;
        bytes = ByteBuffer.wrap(content);
        if (content.length < 52 || content[0] != 0x7f || content[1] != 'E' || content[2] != 'L'
                || content[3] != 'F') {
            throw new IllegalArgumentException("not an ELF file");
        }
        is64 = content[4] == 2;
        bytes.order(content[5] == 2 ? ByteOrder.BIG_ENDIAN : ByteOrder.LITTLE_ENDIAN);
        machine = Short.toUnsignedInt(bytes.getShort(18));
    }

    /**
     * Reads the headers of an ELF file.
     *
     * @param file an executable or shared library
     * @return what it says
     * @throws IOException when it cannot be read or is not a well-formed ELF file
     */
    static ElfFile read(Path file) throws IOException {
        try {
            ElfFile elf = new ElfFile(Files.readAllBytes(file));
            elf.readProgramHeaders();
            return elf;
        } catch (IllegalArgumentException | IndexOutOfBoundsException | ArithmeticException e) {
            throw new IOException(file + " is not a well-formed ELF file: " + e.getMessage(), e);
        }
    }

    private void readProgramHeaders() {
        long phoff = is64 ? bytes.getLong(32) : Integer.toUnsignedLong(bytes.getInt(28));
        int phentsize = Short.toUnsignedInt(bytes.getShort(is64 ? 54 : 42));
        int phnum = Short.toUnsignedInt(bytes.getShort(is64 ? 56 : 44));
        long[] dynamic = null;
        for (int i = 0; i < phnum; i++) {
            int at = Math.toIntExact(phoff + (long) i * phentsize);
            int type = bytes.getInt(at);
            long offset = is64 ? bytes.getLong(at + 8) : word(at + 4);
            long vaddr = is64 ? bytes.getLong(at + 16) : word(at + 8);
            long filesz = is64 ? bytes.getLong(at + 32) : word(at + 16);
            if (type == PT_LOAD) {
                loads.add(new long[] {vaddr, offset, filesz});
            } else if (type == PT_INTERP) {
                interpreter = string(offset);
            } else if (type == PT_DYNAMIC) {
                dynamic = new long[] {offset, filesz};
            }
        }
        if (dynamic != null) {
            readNeeded(dynamic[0], dynamic[1]);
        }
    }

    private void readNeeded(long offset, long size) {
        int entry = is64 ? 16 : 8;
        List<Long> names = new ArrayList<>();
        long strtab = -1;
        for (long at = offset; at + entry <= offset + size; at += entry) {
            int i = Math.toIntExact(at);
            long tag = is64 ? bytes.getLong(i) : bytes.getInt(i);
            long value = is64 ? bytes.getLong(i + 8) : word(i + 4);
            if (tag == 0) {
                break;
            } else if (tag == DT_NEEDED) {
                names.add(value);
            } else if (tag == DT_STRTAB) {
                strtab = fileOffset(value);
            }
        }
        if (strtab >= 0) {
            for (long name : names) {
                needed.add(string(strtab + name));
            }
        }
    }

    private long word(int at) {
        return Integer.toUnsignedLong(bytes.getInt(at));
    }

    private long fileOffset(long vaddr) {
        for (long[] load : loads) {
            if (vaddr >= load[0] && vaddr < load[0] + load[2]) {
                return vaddr - load[0] + load[1];
            }
        }
        throw new IllegalArgumentException("the string table is outside every loaded segment");
    }

    private String string(long offset) {
        int start = Math.toIntExact(offset);
        int end = start;
        while (content[end] != 0) {
            end++;
        }
        return new String(Arrays.copyOfRange(content, start, end), StandardCharsets.UTF_8);
    }

    /**
     * The architecture, named as in the jar's platform directories.
     *
     * @return e.g. {@code x86_64}, {@code aarch64}; {@code machine-<n>} for others
     */
    String architecture() {
        switch (machine) {
            case 62:
                return "x86_64";
            case 183:
                return "aarch64";
            case 3:
                return "x86";
            case 40:
                return "arm";
            case 243:
                return is64 ? "riscv64" : "riscv32";
            case 21:
                return "ppc64";
            case 22:
                return "s390x";
            default:
                return "machine-" + machine;
        }
    }

    /**
     * The program interpreter of an executable.
     *
     * @return e.g. {@code /lib64/ld-linux-x86-64.so.2}; null when the file names none (a
     *     shared library or a static executable)
     */
    String interpreter() {
        return interpreter;
    }

    /**
     * The shared libraries the file needs.
     *
     * @return their names, e.g. {@code libc.so.6}
     */
    List<String> needed() {
        return Collections.unmodifiableList(needed);
    }

    /**
     * The C library the file runs on: from its interpreter when it names one (glibc's
     * {@code ld-linux-*}, musl's {@code ld-musl-*}), else from the C library it needs (glibc's
     * {@code libc.so.6}; musl's {@code libc.so}, or {@code libc.musl-*} on Alpine).
     *
     * @return {@code "glibc"}, {@code "musl"}, or null when the file says neither
     */
    String libc() {
        if (interpreter != null) {
            String loader = interpreter.substring(interpreter.lastIndexOf('/') + 1);
            if (loader.startsWith("ld-musl-")) {
                return "musl";
            }
            if (loader.startsWith("ld-linux")) {
                return "glibc";
            }
        }
        for (String library : needed) {
            if (library.equals("libc.so.6")) {
                return "glibc";
            }
            if (library.equals("libc.so") || library.startsWith("libc.musl-")) {
                return "musl";
            }
        }
        return null;
    }
}

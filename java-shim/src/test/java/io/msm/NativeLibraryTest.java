package io.msm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The loader's choice of library (architecture and C library), its errors, and what it leaves
 * in the temporary directory; the cases that need a JVM of their own run {@link LoadProbe}.
 */
class NativeLibraryTest {
    private static final List<String> SHIPPED = List.of("linux-x86_64", "linux-aarch64",
            "linux-x86_64-musl", "linux-aarch64-musl", "macos-x86_64", "macos-aarch64");
    private static final String HERE = "jar resource META-INF/native/linux-x86_64/libmsm.so";

    @TempDir
    Path temp;

    @Test
    void thePlatformNamesTheOsTheArchitectureAndMusl() {
        assertEquals("linux-x86_64", NativeLibrary.platform("Linux", "amd64", false));
        assertEquals("linux-x86_64-musl", NativeLibrary.platform("Linux", "amd64", true));
        assertEquals("linux-aarch64", NativeLibrary.platform("Linux", "aarch64", false));
        assertEquals("linux-aarch64-musl", NativeLibrary.platform("Linux", "aarch64", true));
        assertEquals("macos-aarch64", NativeLibrary.platform("Mac OS X", "aarch64", false));
        assertEquals("macos-x86_64", NativeLibrary.platform("Mac OS X", "x86_64", false));
        assertEquals("linux-riscv64", NativeLibrary.platform("Linux", "riscv64", false));
        assertEquals("freebsd-x86_64", NativeLibrary.platform("FreeBSD", "amd64", false));
    }

    @Test
    void theCLibraryIsReadFromTheProgramInterpreterNotFromFilesOnDisk() throws IOException {
        assertEquals("musl", ElfFile.read(executable("/lib/ld-musl-aarch64.so.1", 183)).libc());
        assertEquals("aarch64", ElfFile.read(executable("/lib/ld-musl-aarch64.so.1", 183))
                .architecture());
        assertEquals("glibc", ElfFile.read(executable("/lib64/ld-linux-x86-64.so.2", 62)).libc());
        assertEquals("glibc", ElfFile.read(Paths.get("/proc/self/exe")).libc(),
                "this JVM runs on Debian's glibc");
        // musl's loader is installed on this machine, yet this JVM does not run on it.
        assertTrue(Files.exists(Paths.get("/lib/ld-musl-x86_64.so.1")),
                "musl's loader is missing: run `apt-get install -y musl`"
                        + " (or the README's test command, which does)");
        assertEquals("linux-x86_64", NativeLibrary.platform());
    }

    @Test
    void aFileThatIsNotElfIsAnErrorNotACrash() throws IOException {
        Path garbage = Files.write(temp.resolve("garbage"), new byte[] {0x7f, 'E', 'L', 'F', 2});
        assertThrows(IOException.class, () -> ElfFile.read(garbage));
        byte[] truncated = Files.readAllBytes(executable("/lib/ld-musl-x86_64.so.1", 62));
        Path cut = Files.write(temp.resolve("cut"), java.util.Arrays.copyOf(truncated, 100));
        assertThrows(IOException.class, () -> ElfFile.read(cut));
        assertEquals(null, NativeLibrary.builtFor(garbage));
    }

    @Test
    void theJarHasALibraryForEveryPlatformEachBuiltForIt() throws IOException {
        ClassLoader loader = NativeLibraryTest.class.getClassLoader();
        assertEquals(SHIPPED, NativeLibrary.platformsInJar(loader));
        for (String platform : SHIPPED) {
            if (platform.startsWith("macos-")) {
                assertNotNull(loader.getResource("META-INF/native/" + platform + "/libmsm.dylib"),
                        platform);
            } else {
                Path library = fromJar(platform);
                assertEquals(platform, NativeLibrary.builtFor(library));
            }
        }
    }

    @Test
    void aJarWithoutThisPlatformNamesItAndThePlatformsItHas() throws Exception {
        String out = probe(List.of("-Dos.arch=riscv64"), 3);
        assertTrue(out.contains("cannot load the msm native library for linux-riscv64"), out);
        assertTrue(out.contains("this jar has no library for linux-riscv64 (it has "
                + String.join(", ", SHIPPED) + ")"), out);
    }

    @Test
    void aLibraryForAnotherPlatformGivenByPathIsRefusedByName() throws Exception {
        for (String other : List.of("linux-aarch64", "linux-x86_64-musl", "linux-aarch64-musl")) {
            Path library = fromJar(other);
            String out = probe(List.of("-D" + NativeLibrary.PATH_PROPERTY + "=" + library), 3);
            assertTrue(out.contains("cannot load the msm native library from "
                    + NativeLibrary.PATH_PROPERTY + "=" + library + ": it is built for " + other
                    + ", and this JVM runs on linux-x86_64"), out);
        }
        Path garbage = Files.write(temp.resolve("libmsm.so"), new byte[] {1, 2, 3});
        String out = probe(List.of("-D" + NativeLibrary.PATH_PROPERTY + "=" + garbage), 3);
        assertTrue(out.contains("cannot load the msm native library from "
                + NativeLibrary.PATH_PROPERTY + "=" + garbage + ": "), out);
    }

    @Test
    void twoJvmsStartingAtOnceFromOneJarLeaveNothingInTheirTemporaryDirectory() throws Exception {
        Path shared = Files.createDirectory(temp.resolve("tmp"));
        List<Process> jvms = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
            jvms.add(start(List.of("-Djava.io.tmpdir=" + shared)));
        }
        for (Process jvm : jvms) {
            String out = finish(jvm, 0);
            assertTrue(out.contains("called: true"), out);
            assertTrue(out.contains("loaded from " + HERE), out);
        }
        assertEquals(0, count(shared), "the extracted copies are deleted");
        // Alone, a JVM finds its copy gone while it runs: deleted once loaded, not at exit.
        String alone = probe(List.of("-Djava.io.tmpdir=" + shared), 0);
        assertTrue(alone.contains("left in java.io.tmpdir: 0"), alone);
    }

    @Test
    void aTemporaryDirectoryThatCannotBeWrittenIsOneClearError() throws Exception {
        Path file = Files.write(temp.resolve("a-file"), new byte[0]);
        for (Path unwritable : List.of(file.resolve("tmp"), Paths.get("/proc"))) {
            String out = probe(List.of("-Djava.io.tmpdir=" + unwritable), 3);
            assertTrue(out.contains("cannot write it to java.io.tmpdir=" + unwritable), out);
            assertTrue(out.contains("set " + NativeLibrary.PATH_PROPERTY), out);
        }
    }

    @Test
    void aFullTemporaryDirectoryIsOneClearErrorAndKeepsNoPartialCopy() throws Exception {
        Path full = Files.createDirectory(temp.resolve("full"));
        // A file size limit of 1 MiB: writing the 3 MB library fails as on a full disk.
        String out = finish(start(List.of("bash", "-c", "ulimit -f 1024 && exec \"$@\"", "bash"),
                List.of("-Djava.io.tmpdir=" + full)), 3);
        assertTrue(out.contains("cannot write it to java.io.tmpdir=" + full), out);
        assertTrue(out.contains("File too large"), out);
        assertEquals(0, count(full), "the partial copy is deleted");
    }

    /** An ELF64 executable with only a program interpreter. */
    private Path executable(String interpreter, int machine) throws IOException {
        byte[] path = (interpreter + "\0").getBytes(StandardCharsets.US_ASCII);
        ByteBuffer elf = ByteBuffer.allocate(120 + path.length).order(ByteOrder.LITTLE_ENDIAN);
        elf.put(new byte[] {0x7f, 'E', 'L', 'F', 2, 1, 1});
        elf.putShort(16, (short) 2).putShort(18, (short) machine).putLong(32, 64);
        elf.putShort(54, (short) 56).putShort(56, (short) 1);
        elf.putInt(64, 3).putLong(72, 120).putLong(96, path.length);
        elf.position(120);
        elf.put(path);
        return Files.write(Files.createTempFile(temp, "exe", ""), elf.array());
    }

    private Path fromJar(String platform) throws IOException {
        Path file = Files.createDirectories(temp.resolve(platform)).resolve("libmsm.so");
        try (InputStream in = NativeLibraryTest.class.getClassLoader()
                .getResourceAsStream("META-INF/native/" + platform + "/libmsm.so")) {
            assertNotNull(in, platform + " is not in the jar");
            Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
        }
        return file;
    }

    private static long count(Path directory) throws IOException {
        try (Stream<Path> files = Files.list(directory)) {
            return files.count();
        }
    }

    private static String probe(List<String> jvmOptions, int status) throws Exception {
        return finish(start(jvmOptions), status);
    }

    private static Process start(List<String> jvmOptions) throws IOException {
        return start(List.of(), jvmOptions);
    }

    /** Starts {@link LoadProbe} in a JVM of its own, behind {@code prefix} when not empty. */
    private static Process start(List<String> prefix, List<String> jvmOptions) throws IOException {
        List<String> command = new ArrayList<>(prefix);
        command.add(Paths.get(System.getProperty("java.home"), "bin", "java").toString());
        command.addAll(jvmOptions);
        String classpath = String.join(java.io.File.pathSeparator, location(NativeLibrary.class),
                location(LoadProbe.class), location(org.apache.juli.logging.LogFactory.class));
        command.addAll(List.of("-cp", classpath, LoadProbe.class.getName()));
        ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true);
        builder.environment().remove("LD_LIBRARY_PATH");
        return builder.start();
    }

    /** The jar or directory a class comes from (JUnit's console runs it in a class loader). */
    private static String location(Class<?> type) {
        try {
            return Paths.get(type.getProtectionDomain().getCodeSource().getLocation().toURI())
                    .toString();
        } catch (java.net.URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Waits for the probe; its exit status must be {@code status} (never a crash). */
    private static String finish(Process jvm, int status) throws Exception {
        String out = new String(jvm.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(jvm.waitFor(60, TimeUnit.SECONDS), "the probe JVM did not exit:\n" + out);
        assertEquals(status, jvm.exitValue(), out);
        return out;
    }
}

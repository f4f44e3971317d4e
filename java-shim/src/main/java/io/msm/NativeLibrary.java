package io.msm;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.logging.Logger;
import java.util.stream.Collectors;

/**
 * Loads the native core, {@code libmsm}, once per class loader: from the path in the system
 * property {@value #PATH_PROPERTY} when set, else from {@code java.library.path}, else from the
 * copy inside this jar for this JVM's platform (under {@code META-INF/native/<platform>/}),
 * written to a private temporary file that is deleted as soon as it is loaded. When every way
 * fails, the error names this platform, each path tried and why it failed, and the platforms
 * the jar has.
 *
 * <p>The platform is the operating system, the architecture and, on Linux, the C library this
 * JVM runs on ({@code linux-x86_64}, {@code linux-aarch64-musl}, ...): the C library is read
 * from the ELF program interpreter of the running executable, {@code /proc/self/exe} (glibc's
 * {@code ld-linux-*} or musl's {@code ld-musl-*}), not guessed from files present on disk.
 */
public final class NativeLibrary {
    /** System property naming the library file to load instead of searching. */
    public static final String PATH_PROPERTY = "msm.native.library";

    /** The jar's directory of native libraries, one subdirectory per platform. */
    static final String NATIVE_DIRECTORY = "META-INF/native/";

    /** The list of the jar's platforms, one per line, written by the build. */
    static final String PLATFORMS_RESOURCE = NATIVE_DIRECTORY + "platforms";

    private static final Logger LOG = Logger.getLogger(NativeLibrary.class.getName());
    private static final Object LOCK = new Object();
    private static volatile String loadedFrom;
    private static volatile String platform;

    private NativeLibrary() {}

    /**
     * Loads the library unless it is loaded already.
     *
     * @throws MsmException naming this platform and every path tried, when none worked
     */
    public static void load() {
        if (loadedFrom != null) {
            return;
        }
        synchronized (LOCK) {
            if (loadedFrom == null) {
                loadedFrom = loadOnce();
                LOG.info("msm native library for " + platform() + " loaded from " + loadedFrom);
            }
        }
    }

    /**
     * Where the library was loaded from, for diagnostics.
     *
     * @return the property, {@code java.library.path} or the jar resource; null before loading
     */
    public static String loadedFrom() {
        return loadedFrom;
    }

    /**
     * The platform directory inside the jar for this JVM, e.g. {@code linux-x86_64} or
     * {@code linux-aarch64-musl}.
     *
     * @return {@code <os>-<arch>}, followed by {@code -musl} on a musl-based Linux
     */
    public static String platform() {
        String known = platform;
        if (known == null) {
            String os = System.getProperty("os.name", "");
            known = platform(os, System.getProperty("os.arch", ""),
                    os.toLowerCase(Locale.ROOT).startsWith("linux") && runsOnMusl());
            platform = known;
        }
        return known;
    }

    /**
     * The platform directory for an operating system, an architecture and a C library.
     *
     * @param osName the {@code os.name} property, e.g. {@code Linux}, {@code Mac OS X}
     * @param osArch the {@code os.arch} property, e.g. {@code amd64}, {@code aarch64}
     * @param musl whether the C library is musl
     * @return e.g. {@code linux-x86_64}, {@code linux-aarch64-musl}, {@code macos-aarch64}
     */
    static String platform(String osName, String osArch, boolean musl) {
        String os = osName.toLowerCase(Locale.ROOT);
        if (os.startsWith("linux")) {
            os = "linux";
        } else if (os.startsWith("mac")) {
            os = "macos";
        } else if (os.startsWith("windows")) {
            os = "windows";
        } else {
            os = os.replaceAll("[^a-z0-9]", "");
        }
        String arch = osArch.toLowerCase(Locale.ROOT);
        if (arch.equals("amd64") || arch.equals("x86_64")) {
            arch = "x86_64";
        } else if (arch.equals("arm64")) {
            arch = "aarch64";
        } else if (arch.equals("i386") || arch.equals("i686")) {
            arch = "x86";
        }
        return os + "-" + arch + (musl ? "-musl" : "");
    }

    /**
     * Whether this process runs on musl: the program interpreter of {@code /proc/self/exe}
     * names musl's loader, or, for an executable naming none, musl's loader or C library is
     * mapped into the process.
     */
    private static boolean runsOnMusl() {
        try {
            String libc = ElfFile.read(Paths.get("/proc/self/exe")).libc();
            if (libc != null) {
                return libc.equals("musl");
            }
        } catch (IOException e) {
            LOG.fine("cannot read /proc/self/exe, reading /proc/self/maps: " + e);
        }
        try {
            return Files.readAllLines(Paths.get("/proc/self/maps")).stream()
                    .anyMatch(line -> line.contains("/ld-musl-") || line.contains("/libc.musl-"));
        } catch (IOException e) {
            return false;
        }
    }

    /**
     * The resource path of the library inside the jar for this platform.
     *
     * @return e.g. {@code META-INF/native/linux-x86_64/libmsm.so}
     */
    public static String resource() {
        return NATIVE_DIRECTORY + platform() + "/" + System.mapLibraryName("msm");
    }

    /**
     * The platforms the jar carries a library for, from its list.
     *
     * @param loader the class loader that sees the jar
     * @return e.g. {@code [linux-aarch64, linux-x86_64, ...]}; empty when the jar has no list
     */
    static List<String> platformsInJar(ClassLoader loader) {
        try (InputStream in = loader.getResourceAsStream(PLATFORMS_RESOURCE)) {
            if (in == null) {
                return List.of();
            }
            return new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8)).lines()
                    .map(String::trim).filter(line -> !line.isEmpty()).collect(Collectors.toList());
        } catch (IOException e) {
            return List.of();
        }
    }

    private static String loadOnce() {
        List<String> tried = new ArrayList<>();
        String explicit = System.getProperty(PATH_PROPERTY);
        if (explicit != null && !explicit.isEmpty()) {
            // An explicit path is the operator's decision: do not fall back silently.
            String built = builtFor(Paths.get(explicit));
            if (built != null && platform().startsWith("linux-") && !built.equals(platform())) {
                throw new MsmException("cannot load the msm native library from " + PATH_PROPERTY
                        + "=" + explicit + ": it is built for " + built + ", and this JVM runs on "
                        + platform());
            }
            try {
                System.load(explicit);
                return PATH_PROPERTY + "=" + explicit;
            } catch (UnsatisfiedLinkError e) {
                throw new MsmException("cannot load the msm native library from " + PATH_PROPERTY
                        + "=" + explicit + ": " + e.getMessage(), e);
            }
        }
        tried.add("system property " + PATH_PROPERTY + ": not set");
        try {
            System.loadLibrary("msm");
            return "java.library.path";
        } catch (UnsatisfiedLinkError e) {
            tried.add("java.library.path=" + System.getProperty("java.library.path") + ": "
                    + e.getMessage());
        }
        String resource = resource();
        ClassLoader loader = NativeLibrary.class.getClassLoader();
        try (InputStream in = loader.getResourceAsStream(resource)) {
            if (in == null) {
                List<String> platforms = platformsInJar(loader);
                tried.add("jar resource " + resource + ": this jar has no library for "
                        + platform() + " (it has "
                        + (platforms.isEmpty() ? "none" : String.join(", ", platforms)) + ")");
            } else {
                Path file = extract(in, tried, resource);
                if (file != null) {
                    try {
                        System.load(file.toString());
                        return "jar resource " + resource;
                    } catch (UnsatisfiedLinkError e) {
                        tried.add("jar resource " + resource + " extracted to " + file + ": "
                                + e.getMessage());
                    } finally {
                        // Loaded (or not), the file is no longer needed: nothing is left behind.
                        delete(file);
                    }
                }
            }
        } catch (IOException e) {
            tried.add("jar resource " + resource + ": " + e);
        }
        throw new MsmException("cannot load the msm native library for " + platform()
                + "; tried: " + String.join("; ", tried));
    }

    /**
     * The Linux platform an ELF library is built for, as named in the jar.
     *
     * @param library a library file
     * @return e.g. {@code linux-aarch64-musl}; null when the file cannot be read as ELF or
     *     names no C library (then the JVM's loader says what is wrong, if anything)
     */
    static String builtFor(Path library) {
        try {
            ElfFile elf = ElfFile.read(library);
            String libc = elf.libc();
            return libc == null ? null
                    : "linux-" + elf.architecture() + (libc.equals("musl") ? "-musl" : "");
        } catch (IOException e) {
            return null;
        }
    }

    private static void delete(Path file) {
        try {
            Files.deleteIfExists(file);
        } catch (IOException e) {
            LOG.warning("cannot delete the extracted msm native library " + file + ": " + e);
        }
    }

    /**
     * Writes the library to a new private file in {@code java.io.tmpdir}.
     *
     * @return the file; null when it could not be written (the reason added to {@code tried})
     */
    private static Path extract(InputStream in, List<String> tried, String resource) {
        Path directory = Paths.get(System.getProperty("java.io.tmpdir"));
        Path file = null;
        try {
            try {
                file = Files.createTempFile(directory, "libmsm-", ".so", PosixFilePermissions
                        .asFileAttribute(PosixFilePermissions.fromString("rw-------")));
            } catch (UnsupportedOperationException e) {
                file = Files.createTempFile(directory, "libmsm-", ".so");
            }
            Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
            return file;
        } catch (IOException e) {
            tried.add("jar resource " + resource + ": cannot write it to java.io.tmpdir="
                    + directory + " (" + e + "); give java.io.tmpdir a writable directory with a"
                    + " few MB free, or set " + PATH_PROPERTY + " to the library's path");
            if (file != null) {
                delete(file);
            }
            return null;
        }
    }
}

package io.msm;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Loads the native core, {@code libmsm}, once per class loader: from the path in the system
 * property {@value #PATH_PROPERTY} when set, else from {@code java.library.path}, else from the
 * copy inside this jar (under {@code META-INF/native/<os>-<arch>/}), extracted to a private
 * temporary file. When every way fails, the error names each path tried and why it failed.
 */
public final class NativeLibrary {
    /** System property naming the library file to load instead of searching. */
    public static final String PATH_PROPERTY = "msm.native.library";

    private static final Object LOCK = new Object();
    private static volatile String loadedFrom;

    private NativeLibrary() {}

    /**
     * Loads the library unless it is loaded already.
     *
     * @throws MsmException naming every path tried, when none worked
     */
    public static void load() {
        if (loadedFrom != null) {
            return;
        }
        synchronized (LOCK) {
            if (loadedFrom == null) {
                loadedFrom = loadOnce();
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
     * The platform directory inside the jar, e.g. {@code linux-x86_64}.
     *
     * @return {@code <os>-<arch>} of this JVM
     */
    public static String platform() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        if (os.startsWith("linux")) {
            os = "linux";
        } else if (os.startsWith("mac")) {
            os = "macos";
        } else if (os.startsWith("windows")) {
            os = "windows";
        }
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        if (arch.equals("amd64") || arch.equals("x86_64")) {
            arch = "x86_64";
        } else if (arch.equals("arm64")) {
            arch = "aarch64";
        }
        return os + "-" + arch;
    }

    /**
     * The resource path of the library inside the jar for this platform.
     *
     * @return e.g. {@code META-INF/native/linux-x86_64/libmsm.so}
     */
    public static String resource() {
        return "META-INF/native/" + platform() + "/" + System.mapLibraryName("msm");
    }

    private static String loadOnce() {
        List<String> tried = new ArrayList<>();
        String explicit = System.getProperty(PATH_PROPERTY);
        if (explicit != null && !explicit.isEmpty()) {
            try {
                System.load(explicit);
                return PATH_PROPERTY + "=" + explicit;
            } catch (UnsatisfiedLinkError e) {
                // An explicit path is the operator's decision: do not fall back silently.
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
        try (InputStream in = NativeLibrary.class.getClassLoader().getResourceAsStream(resource)) {
            if (in == null) {
                tried.add("jar resource " + resource + ": not present (no build for "
                        + platform() + " in this jar)");
            } else {
                Path file = extract(in);
                try {
                    System.load(file.toString());
                    return "jar resource " + resource;
                } catch (UnsatisfiedLinkError e) {
                    tried.add("jar resource " + resource + " extracted to " + file + ": "
                            + e.getMessage());
                }
            }
        } catch (IOException e) {
            tried.add("jar resource " + resource + ": " + e);
        }
        throw new MsmException("cannot load the msm native library; tried: "
                + String.join("; ", tried));
    }

    private static Path extract(InputStream in) throws IOException {
        Path file;
        try {
            file = Files.createTempFile("libmsm-", ".so",
                    PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        } catch (UnsupportedOperationException e) {
            file = Files.createTempFile("libmsm-", ".so");
        }
        file.toFile().deleteOnExit();
        Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
        return file;
    }
}

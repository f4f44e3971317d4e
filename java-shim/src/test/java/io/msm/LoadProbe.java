package io.msm;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.stream.Stream;

/**
 * Run in a JVM of its own by {@link NativeLibraryTest}: loads the library, calls into it, and
 * prints where it came from and how many extracted copies are left in {@code java.io.tmpdir};
 * exits with status 3 and prints the error when loading fails.
 */
public final class LoadProbe {
    private LoadProbe() {}

    /**
     * Loads the library and reports.
     *
     * @param args none
     * @throws IOException when {@code java.io.tmpdir} cannot be listed after loading
     */
    public static void main(String[] args) throws IOException {
        try {
            NativeLibrary.load();
        } catch (MsmException e) {
            System.out.println("error: " + e.getMessage());
            System.exit(3);
        }
        long handle = Native.create(new String[] {"memcachedNodes"},
                new String[] {"n1:127.0.0.1:1"}, "localhost", "");
        System.out.println("called: " + Native.stats(handle).contains("ids_generated 0"));
        Native.destroy(handle);
        System.out.println("loaded from " + NativeLibrary.loadedFrom());
        try (Stream<Path> files = Files.list(Paths.get(System.getProperty("java.io.tmpdir")))) {
            System.out.println("left in java.io.tmpdir: "
                    + files.filter(f -> f.getFileName().toString().startsWith("libmsm")).count());
        }
    }
}

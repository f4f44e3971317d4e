//! The libraries the jars ship, as `scripts/build-jar.sh` leaves them in
//! `target/native/<platform>/` and puts them in the jars: the glibc ones need nothing newer than
//! glibc 2.17, the Linux ones are stripped with their debug information kept beside them, both
//! jars carry exactly these files, and the Tomcats of the end-to-end tests load the glibc 2.17
//! x86_64 one from the jar, two at the same instant. (`tests/c_api.rs` runs the C test program
//! on each Linux library, under qemu-user for aarch64.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Memcached;
use common::tomcat::{Options, Tomcat, built_jar};

/// Every platform directory of the jars, with its library's file name.
const SHIPPED: [(&str, &str); 6] = [
    ("linux-x86_64", "libmsm.so"),
    ("linux-aarch64", "libmsm.so"),
    ("linux-x86_64-musl", "libmsm.so"),
    ("linux-aarch64-musl", "libmsm.so"),
    ("macos-x86_64", "libmsm.dylib"),
    ("macos-aarch64", "libmsm.dylib"),
];

/// The newest glibc the glibc libraries may need: RHEL/CentOS 7's.
const GLIBC_LIMIT: [u32; 2] = [2, 17];

fn shipped(platform: &str, file: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/native")
        .join(platform)
        .join(file);
    assert!(
        path.is_file(),
        "{} is missing: run `bash scripts/build-jar.sh` (the README's test command does)",
        path.display()
    );
    path
}

/// Runs a program of binutils or unzip and returns what it printed.
fn output(program: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{program}` ({e}): run `bash scripts/setup.sh test` (the README's test command does)")
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn readelf(args: &[&str], file: &Path) -> String {
    let file = file.to_str().expect("a UTF-8 path");
    let args: Vec<&str> = args.iter().copied().chain([file]).collect();
    String::from_utf8(output("readelf", &args)).expect("readelf prints text")
}

/// The GLIBC_x.y[.z] symbol versions a library needs, from its version-needs section.
fn glibc_versions(library: &Path) -> Vec<Vec<u32>> {
    readelf(&["-V", "-W"], library)
        .split_whitespace()
        .filter_map(|word| word.strip_prefix("GLIBC_"))
        .map(|version| {
            version
                .split('.')
                .map(|part| {
                    part.parse()
                        .unwrap_or_else(|_| panic!("GLIBC_{version} needed"))
                })
                .collect()
        })
        .collect()
}

fn sections(file: &Path) -> String {
    readelf(&["-S", "-W"], file)
}

fn build_id(file: &Path) -> String {
    readelf(&["-n"], file)
        .lines()
        .find_map(|line| line.trim().strip_prefix("Build ID: ").map(str::to_owned))
        .unwrap_or_else(|| panic!("{} has no build id", file.display()))
}

#[test]
fn glibc_libraries_need_glibc_2_17_at_most_and_musl_ones_no_glibc() {
    for platform in ["linux-x86_64", "linux-aarch64"] {
        let library = shipped(platform, "libmsm.so");
        let versions = glibc_versions(&library);
        let highest = versions
            .iter()
            .max()
            .expect("a glibc library needs GLIBC versions");
        println!(
            "{platform}: the highest GLIBC symbol version needed is GLIBC_{}",
            highest
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(".")
        );
        assert!(
            highest.as_slice() <= GLIBC_LIMIT.as_slice(),
            "{} needs GLIBC {highest:?}, newer than {GLIBC_LIMIT:?}",
            library.display()
        );
    }
    for platform in ["linux-x86_64-musl", "linux-aarch64-musl"] {
        let library = shipped(platform, "libmsm.so");
        assert_eq!(
            glibc_versions(&library),
            Vec::<Vec<u32>>::new(),
            "{platform}"
        );
        let dynamic = readelf(&["-d", "-W"], &library);
        assert!(dynamic.contains("Shared library: [libc.so]"), "{dynamic}");
        assert!(!dynamic.contains("libc.so.6"), "{dynamic}");
    }
}

#[test]
fn linux_libraries_are_stripped_and_keep_their_debug_information_beside_them() {
    for (platform, file) in SHIPPED.iter().filter(|(p, _)| p.starts_with("linux-")) {
        let library = shipped(platform, file);
        let debug = shipped(platform, &format!("{file}.debug"));
        let size = std::fs::metadata(&library).unwrap().len();
        println!(
            "{platform}: {file} {size} bytes, {file}.debug {} bytes",
            std::fs::metadata(&debug).unwrap().len()
        );
        // About 3 MB before TLS; rustls and ring add about 2.5 MB.
        assert!(size < 8_000_000, "{} is {size} bytes", library.display());
        let stripped = sections(&library);
        assert!(!stripped.contains(".debug_info"), "{stripped}");
        assert!(!stripped.contains(".symtab"), "{stripped}");
        assert!(stripped.contains(".gnu_debuglink"), "{stripped}");
        let kept = sections(&debug);
        assert!(kept.contains(".debug_info"), "{kept}");
        assert!(kept.contains(".symtab"), "{kept}");
        assert_eq!(build_id(&library), build_id(&debug), "{platform}");
    }
}

#[test]
fn both_jars_carry_exactly_the_shipped_libraries() {
    for jar in ["msm-tomcat10.jar", "msm-tomcat9.jar"] {
        let jar = built_jar(jar);
        let jar_path = jar.to_str().expect("a UTF-8 path");
        let listing = String::from_utf8(output("unzip", &["-Z1", jar_path])).unwrap();
        let mut native: Vec<&str> = listing
            .lines()
            .filter(|entry| entry.starts_with("META-INF/native/") && !entry.ends_with('/'))
            .collect();
        native.sort_unstable();
        let mut expected: Vec<String> = SHIPPED
            .iter()
            .map(|(platform, file)| format!("META-INF/native/{platform}/{file}"))
            .chain(["META-INF/native/platforms".to_owned()])
            .collect();
        expected.sort_unstable();
        assert_eq!(native, expected, "{}", jar.display());
        for (platform, file) in SHIPPED {
            let entry = format!("META-INF/native/{platform}/{file}");
            assert!(
                output("unzip", &["-p", jar_path, &entry])
                    == std::fs::read(shipped(platform, file)).unwrap(),
                "{entry} of {} differs from target/native",
                jar.display()
            );
        }
    }
}

#[test]
fn two_tomcats_starting_at_once_from_one_jar_load_its_glibc_2_17_library() {
    let memcached = Memcached::start();
    let nodes = format!("n1:{}", memcached.address());
    let tomcats: Vec<Tomcat> = std::thread::scope(|scope| {
        let starting: Vec<_> = ["a", "b"]
            .map(|route| {
                let options = Options::msm(route, &[("memcachedNodes", &nodes)]);
                scope.spawn(move || Tomcat::start(&options))
            })
            .into_iter()
            .collect();
        starting
            .into_iter()
            .map(|tomcat| tomcat.join().expect("a Tomcat start panicked"))
            .collect()
    });
    for tomcat in &tomcats {
        let log = tomcat.log();
        assert!(
            log.contains(
                "msm native library for linux-x86_64 loaded from jar resource META-INF/native/linux-x86_64/libmsm.so"
            ),
            "{log}"
        );
        let response = tomcat.get("/", None);
        assert_eq!(response.status, 200, "{}", response.body);
        assert!(response.new_session.is_some());
    }
}

//! The C API as a C host uses it: `tests/c/msm_test.c` is compiled with the system C compiler
//! against `include/msm.h`, linked to the static library, and run against three real memcached
//! servers, the first of which it kills itself (SIGKILL) to exercise failover.
//!
//! The same program also runs on every Linux library the jars ship (`target/native/<platform>/`,
//! built by `scripts/build-jar.sh`): compiled with zig for that platform and linked to the
//! shipped `libmsm.so`; the aarch64 ones run under qemu-user with Debian's aarch64 glibc and
//! musl loaders, the x86_64 musl one with Debian's musl loader.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{Memcached, TempDir, compile_c};

/// The package root: `include/` and `tests/c/` are found from here.
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// How long the C program may run before it is considered hung.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Compiles the C test program to `output`.
fn compile(output: &Path) {
    compile_c("tests/c/msm_test.c", &[], output);
}

/// Runs `command` with `args`, its output going to files in `dir`; returns its exit status (or
/// `None` if it had to be killed after [`RUN_LIMIT`]), its stdout and its stderr.
fn run(mut command: Command, args: &[String], dir: &Path) -> (Option<ExitStatus>, String, String) {
    let stdout_path = dir.join("stdout");
    let stderr_path = dir.join("stderr");
    let mut child = command
        .args(args)
        // cargo puts its build directories there, with a libmsm.so of the test build: the
        // program must load the library it was linked to.
        .env_remove("LD_LIBRARY_PATH")
        // The program makes the library panic on purpose; one line of it is enough.
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).expect("create stdout file"))
        .stderr(File::create(&stderr_path).expect("create stderr file"))
        .spawn()
        .expect("cannot start the C test program");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if started.elapsed() > RUN_LIMIT {
            child.kill().expect("kill the hung C test program");
            child.wait().expect("wait");
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |path: &Path| String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
    (status, read(&stdout_path), read(&stderr_path))
}

/// Runs the compiled test program (through `command`) against three memcached servers and
/// fails unless every check of it passed.
fn assert_passes(command: Command, dir: &Path) {
    let servers = [Memcached::start(), Memcached::start(), Memcached::start()];
    let mut args: Vec<String> = servers.iter().map(Memcached::address).collect();
    args.push(servers[0].pid().to_string());
    let (status, stdout, stderr) = run(command, &args, dir);

    let report = format!(
        "C test program {}\n--- stdout\n{stdout}--- stderr\n{stderr}",
        match status {
            Some(status) => format!("exited with {status}"),
            None => format!("was killed after running for {RUN_LIMIT:?}"),
        }
    );
    let all_passed = stdout.lines().any(|line| {
        line.strip_suffix(" passed, 0 failed")
            .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n > 0))
    });
    assert!(
        status.is_some_and(|s| s.success()) && all_passed,
        "{report}"
    );
    println!("{report}");
    // Dropping `servers` kills and reaps the other two; the first, killed by the program, is
    // reaped there as well.
}

#[test]
fn c_program_exercises_the_whole_api() {
    let dir = TempDir::new("c-api");
    let program = dir.path.join("msm_test");
    compile(&program);
    assert_passes(Command::new(&program), &dir.path);
}

/// Paths of `scripts/toolchain.sh`, which `scripts/setup.sh test` fills.
struct Toolchain {
    zig: PathBuf,
    qemu_aarch64: PathBuf,
    aarch64_glibc_root: PathBuf,
    aarch64_musl_root: PathBuf,
}

fn toolchain() -> Toolchain {
    let out = Command::new("bash")
        .current_dir(ROOT)
        .args(["-c", "source scripts/toolchain.sh && printf '%s\\n' \"$ZIG\" \"$QEMU_AARCH64\" \"$AARCH64_GLIBC_ROOT\" \"$AARCH64_MUSL_ROOT\""])
        .output()
        .expect("cannot run bash");
    assert!(out.status.success(), "scripts/toolchain.sh failed: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut paths = text.lines().map(PathBuf::from);
    let mut next = || paths.next().expect("scripts/toolchain.sh names four paths");
    let toolchain = Toolchain {
        zig: next(),
        qemu_aarch64: next(),
        aarch64_glibc_root: next(),
        aarch64_musl_root: next(),
    };
    let needed = [
        (toolchain.zig.clone(), "zig"),
        (toolchain.qemu_aarch64.clone(), "qemu-user"),
        (
            toolchain
                .aarch64_glibc_root
                .join("lib/ld-linux-aarch64.so.1"),
            "libc6-arm64-cross",
        ),
        (
            toolchain.aarch64_musl_root.join("lib/ld-musl-aarch64.so.1"),
            "Debian's musl:arm64",
        ),
        (PathBuf::from("/lib/ld-musl-x86_64.so.1"), "musl"),
    ];
    for (path, what) in needed {
        assert!(
            path.exists(),
            "{} ({what}) is missing: run `bash scripts/setup.sh test` (the README's test command does)",
            path.display()
        );
    }
    toolchain
}

/// Compiles the test program for a shipped platform with zig, links it to that platform's
/// shipped library and runs it, under qemu-user for aarch64.
fn shipped_library_passes(platform: &str, zig_target: &str) {
    let toolchain = toolchain();
    let library_dir = Path::new(ROOT).join("target/native").join(platform);
    assert!(
        library_dir.join("libmsm.so").is_file(),
        "{}/libmsm.so is missing: run `bash scripts/build-jar.sh` (the README's test command does)",
        library_dir.display()
    );
    let dir = TempDir::new("c-api-shipped");
    let program = dir.path.join("msm_test");
    // No sanitizer runtime: zig's would link a newer C library than the loaders here provide.
    let compiled = Command::new(&toolchain.zig)
        .current_dir(ROOT)
        .args(["cc", "-target", zig_target, "-fno-sanitize=all"])
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"])
        .args(["-I", "include", "tests/c/msm_test.c", "-lmsm"])
        .arg(format!("-L{}", library_dir.display()))
        .arg(format!("-Wl,-rpath,{}", library_dir.display()))
        .arg("-o")
        .arg(&program)
        .output()
        .expect("cannot run zig");
    assert!(
        compiled.status.success(),
        "tests/c/msm_test.c did not compile for {zig_target}:\n{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    let command = if platform.starts_with("linux-aarch64") {
        let root = if platform.ends_with("-musl") {
            &toolchain.aarch64_musl_root
        } else {
            &toolchain.aarch64_glibc_root
        };
        let mut qemu = Command::new(&toolchain.qemu_aarch64);
        qemu.arg("-L").arg(root).arg(&program);
        qemu
    } else {
        Command::new(&program)
    };
    assert_passes(command, &dir.path);
}

#[test]
fn shipped_glibc_x86_64_library_passes() {
    shipped_library_passes("linux-x86_64", "x86_64-linux-gnu.2.17");
}

#[test]
fn shipped_glibc_aarch64_library_passes_under_qemu() {
    shipped_library_passes("linux-aarch64", "aarch64-linux-gnu.2.17");
}

#[test]
fn shipped_musl_x86_64_library_passes_with_musls_loader() {
    shipped_library_passes("linux-x86_64-musl", "x86_64-linux-musl");
}

#[test]
fn shipped_musl_aarch64_library_passes_under_qemu() {
    shipped_library_passes("linux-aarch64-musl", "aarch64-linux-musl");
}

//! The C API as a C host uses it: `tests/c/msm_test.c` is compiled with the system C compiler
//! against `include/msm.h`, linked to the static library, and run against three real memcached
//! servers, the first of which it kills itself (SIGKILL) to exercise failover.

mod common;

use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{Memcached, TempDir};

/// The package root: `include/` and `tests/c/` are found from here.
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// How long the C program may run before it is considered hung.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// The static library of this very build.
///
/// `cargo test` builds the library with every crate type of `Cargo.toml` into the directory
/// holding the test executables (`target/<profile>/deps`); only `cargo build` copies it up to
/// `target/<profile>`, where it may be older than the code under test. So `deps` comes first.
fn static_library() -> PathBuf {
    let exe = std::env::current_exe().expect("cannot locate the test executable");
    let deps = exe.parent().expect("the test executable has a directory");
    let candidates: Vec<PathBuf> = [Some(deps), deps.parent()]
        .into_iter()
        .flatten()
        .map(|dir| dir.join("libmsm.a"))
        .collect();
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "libmsm.a is not in {candidates:?}: the [lib] crate-type of Cargo.toml must include \"staticlib\""
            )
        })
}

/// Compiles the C test program to `output`; a compiler error fails the test with its messages.
fn compile(output: &Path) {
    let library = static_library();
    let result = Command::new("cc")
        .current_dir(ROOT)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"])
        .args(["-I", "include", "tests/c/msm_test.c"])
        .arg(&library)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(output)
        .output();
    let compiled = match result {
        Ok(compiled) => compiled,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "the C compiler `cc` is not installed: run `apt-get install -y gcc` (or the README's test command, which does)"
        ),
        Err(e) => panic!("cannot run `cc`: {e}"),
    };
    assert!(
        compiled.status.success(),
        "tests/c/msm_test.c did not compile against include/msm.h and {}:\n{}{}",
        library.display(),
        String::from_utf8_lossy(&compiled.stdout),
        String::from_utf8_lossy(&compiled.stderr),
    );
}

/// Runs `program` with `args`, its output going to files in `dir`; returns its exit status (or
/// `None` if it had to be killed after [`RUN_LIMIT`]), its stdout and its stderr.
fn run(program: &Path, args: &[String], dir: &Path) -> (Option<ExitStatus>, String, String) {
    let stdout_path = dir.join("stdout");
    let stderr_path = dir.join("stderr");
    let mut child = Command::new(program)
        .args(args)
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

#[test]
fn c_program_exercises_the_whole_api() {
    let servers = [Memcached::start(), Memcached::start(), Memcached::start()];
    let dir = TempDir::new("c-api");
    let program = dir.path.join("msm_test");
    compile(&program);

    let mut args: Vec<String> = servers.iter().map(Memcached::address).collect();
    args.push(servers[0].pid().to_string());
    let (status, stdout, stderr) = run(&program, &args, &dir.path);

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

//! Builds the C tests in `c_tests/` with `-Wall -Wextra -Werror` against
//! `include/pyalloc.h`, the static library (its path and link line taken from
//! cargo's JSON messages and `--print native-static-libs`) and the libpython
//! that pyo3-ffi built for, then runs each program under several
//! `PYTHONMALLOC` settings with a timeout: a hang is a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use std::{env, fs, thread};

const PROGRAMS: [&str; 4] = ["exchange", "lifecycle", "subinterpreters", "out_of_memory"];
/// Also built with AddressSanitizer (not out_of_memory: ASan's shadow memory
/// does not fit under its RLIMIT_AS).
const ASAN_PROGRAMS: [&str; 3] = ["exchange", "lifecycle", "subinterpreters"];
const TIMEOUT: Duration = Duration::from_secs(120);

struct Built {
    programs: PathBuf,
    python_home: String,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(build_programs)
}

/// The static library's path and its native link line, from cargo itself.
fn static_library() -> (PathBuf, Vec<String>) {
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    let output = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(manifest_dir)
        .args([
            "rustc",
            "--lib",
            "--crate-type",
            "staticlib",
            "--message-format=json",
        ])
        .args(["--", "--print", "native-static-libs"])
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo could not build the static library"
    );
    let messages = String::from_utf8(output.stdout).expect("cargo prints UTF-8");
    let mut library = None;
    let mut native_libs = None;
    for line in messages.lines() {
        if line.contains(r#""reason":"compiler-artifact""#) && line.contains(r#""kind":["staticlib"]"#) {
            library = json_string_after(line, r#""filenames":[""#).map(PathBuf::from);
        }
        if let Some(start) = line.find("native-static-libs: ") {
            let rest = &line[start + "native-static-libs: ".len()..];
            let end = rest.find(['"', '\\']).unwrap_or(rest.len());
            native_libs = Some(rest[..end].split_whitespace().map(String::from).collect());
        }
    }
    (
        library.expect("cargo reported the static library"),
        native_libs.expect("rustc printed native-static-libs"),
    )
}

fn json_string_after(line: &str, key: &str) -> Option<String> {
    let start = line.find(key)? + key.len();
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_owned())
}

/// `include`, `LIBDIR`, `LDVERSION` and `base_prefix` of the Python that
/// pyo3-ffi linked, asked of that interpreter.
fn python_config() -> [String; 4] {
    let python = env!("PYALLOC_BUILD_PYTHON");
    let output = Command::new(python)
        .args([
            "-c",
            "import sys, sysconfig\n\
             print(sysconfig.get_paths()['include'])\n\
             print(sysconfig.get_config_var('LIBDIR'))\n\
             print(sysconfig.get_config_var('LDVERSION'))\n\
             print(sys.base_prefix)",
        ])
        .output()
        .unwrap_or_else(|err| panic!("cannot run {python}: {err}"));
    assert!(output.status.success(), "{python} failed to report its config");
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    let lines: Vec<String> = text.lines().map(String::from).collect();
    lines.try_into().expect("four lines of config")
}

fn build_programs() -> Built {
    let (library, native_libs) = static_library();
    let [include, libdir, ldversion, home] = python_config();
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let programs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c_tests");
    fs::create_dir_all(&programs).expect("tmpdir is writable");
    let target = env!("PYALLOC_BUILD_TARGET");
    let compiler = cc::Build::new()
        .target(target)
        .host(target)
        .opt_level(1)
        .debug(true)
        .cargo_metadata(false)
        .get_compiler();
    let variants = PROGRAMS
        .iter()
        .map(|name| (*name, name.to_string(), &[][..]))
        .chain(ASAN_PROGRAMS.iter().map(|name| {
            (
                *name,
                format!("{name}-asan"),
                &["-fsanitize=address", "-fno-omit-frame-pointer"][..],
            )
        }));
    for (source, output, extra_flags) in variants {
        let mut command = compiler.to_command();
        command
            .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread"])
            .args(extra_flags)
            .arg("-I")
            .arg(manifest_dir.join("include"))
            .arg("-I")
            .arg(&include)
            .arg(manifest_dir.join("c_tests").join(format!("{source}.c")))
            .arg("-o")
            .arg(programs.join(&output))
            .arg(&library)
            .arg(format!("-L{libdir}"))
            .arg(format!("-lpython{ldversion}"))
            .arg(format!("-Wl,-rpath,{libdir}"))
            .args(&native_libs);
        let status = command.status().expect("the C compiler runs");
        assert!(
            status.success(),
            "compiling c_tests/{source}.c failed: {command:?}"
        );
    }
    Built {
        programs,
        python_home: home,
    }
}

/// Runs one C test program, optionally under a wrapper (valgrind), with the
/// given PYTHONMALLOC (None: the interpreter's default), and fails on a
/// non-zero exit or a timeout. Returns what it printed.
fn run(name: &str, pythonmalloc: Option<&str>, wrapper: &[&str], extra_env: &[(&str, &str)]) -> String {
    let built = built();
    let log_dir = built.programs.join("logs");
    fs::create_dir_all(&log_dir).expect("writable");
    let tag = format!("{name}-{}-{}", pythonmalloc.unwrap_or("default"), wrapper.len());
    let stdout_path = log_dir.join(format!("{tag}.out"));
    let stderr_path = log_dir.join(format!("{tag}.err"));
    let program = built.programs.join(name);
    let mut command = match wrapper.split_first() {
        Some((tool, args)) => {
            let mut command = Command::new(tool);
            command.args(args).arg(&program);
            command
        }
        None => Command::new(&program),
    };
    command
        .env("PYTHONHOME", &built.python_home)
        .env_remove("PYTHONMALLOC")
        .env_remove("PYTHONPATH")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout_path).expect("writable"))
        .stderr(fs::File::create(&stderr_path).expect("writable"));
    command.envs(extra_env.iter().copied());
    if let Some(mode) = pythonmalloc {
        command.env("PYTHONMALLOC", mode);
    }
    let mut child = command.spawn().expect("the test program starts");
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait works") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let stdout = fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
    match status {
        None => panic!("{tag}: timed out after {TIMEOUT:?} (deadlock?)\n{stdout}\n{stderr}"),
        Some(status) if !status.success() => {
            panic!("{tag}: exited with {status}\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
        }
        Some(_) => {
            print!("{stdout}");
            stdout
        }
    }
}

macro_rules! c_test {
    ($test:ident, $program:literal, $mode:expr) => {
        #[test]
        fn $test() {
            let printed = run($program, $mode, &[], &[]);
            assert!(printed.contains("ok "), "{} ran no case", $program);
        }
    };
}

c_test!(exchange_default, "exchange", None);
c_test!(exchange_debug_hooks, "exchange", Some("debug"));
c_test!(exchange_malloc_debug, "exchange", Some("malloc_debug"));
c_test!(lifecycle_default, "lifecycle", None);
c_test!(lifecycle_debug_hooks, "lifecycle", Some("debug"));
c_test!(lifecycle_malloc_debug, "lifecycle", Some("malloc_debug"));
c_test!(subinterpreters_default, "subinterpreters", None);
c_test!(subinterpreters_debug_hooks, "subinterpreters", Some("debug"));
c_test!(
    subinterpreters_malloc_debug,
    "subinterpreters",
    Some("malloc_debug")
);
c_test!(out_of_memory_default, "out_of_memory", None);
c_test!(out_of_memory_debug_hooks, "out_of_memory", Some("debug"));
c_test!(out_of_memory_malloc_debug, "out_of_memory", Some("malloc_debug"));

/// Under valgrind with `PYTHONMALLOC=malloc`, so that it sees every block:
/// no invalid read, write or free anywhere in the exchange, and no block
/// that pyalloc allocated is definitely lost.
#[test]
fn exchange_valgrind() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("skipped: valgrind is not installed");
        return;
    }
    let suppressions = format!(
        "--suppressions={}/c_tests/valgrind-python.supp",
        env!("CARGO_MANIFEST_DIR")
    );
    // One log per process: the exchange forks.
    let log_dir = built().programs.join("valgrind");
    let _ = fs::remove_dir_all(&log_dir);
    fs::create_dir_all(&log_dir).expect("writable");
    let log_file = format!("--log-file={}/%p.log", log_dir.display());
    let printed = run(
        "exchange",
        Some("malloc"),
        &[
            "valgrind",
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=none",
            &log_file,
            &suppressions,
        ],
        &[("PYALLOC_TEST_OPS", "60")],
    );
    assert!(printed.contains("ok fork_with_a_queued_block"));
    let mut leaks = Vec::new();
    for entry in fs::read_dir(&log_dir).expect("logs are readable").flatten() {
        let log = fs::read_to_string(entry.path()).unwrap_or_default();
        assert!(
            log.contains("ERROR SUMMARY: 0 errors"),
            "valgrind found errors:\n{log}"
        );
        leaks.extend(valgrind_records(&log).into_iter().filter(|record| {
            record.contains("definitely lost in loss record") && allocated_by_pyalloc(record)
        }));
    }
    assert!(
        leaks.is_empty(),
        "pyalloc's blocks leaked:\n{}",
        leaks.join("\n\n")
    );
}

/// Valgrind's messages, one string each (its records are separated by blank
/// `==PID==` lines).
fn valgrind_records(log: &str) -> Vec<String> {
    let mut records = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in log.lines().filter(|line| line.starts_with("==")) {
        let text = line.splitn(3, "==").nth(2).unwrap_or("").trim();
        if text.is_empty() {
            if !current.is_empty() {
                records.push(current.join("\n"));
                current.clear();
            }
        } else {
            current.push(text);
        }
    }
    if !current.is_empty() {
        records.push(current.join("\n"));
    }
    records
}

/// Whether a leak record's block was allocated by pyalloc's Rust code: the
/// first frame past the allocators (malloc, PyMem, Rust's allocation
/// plumbing in `library/`) is in one of `src/*.rs`.
fn allocated_by_pyalloc(record: &str) -> bool {
    const PASS_THROUGH: [&str; 12] = [
        "malloc",
        "calloc",
        "realloc",
        "posix_memalign",
        "PyMem_",
        "_PyMem_",
        "PyObject_Malloc",
        "__rust_",
        "__rdl_",
        "alloc::",
        "core::",
        "std::",
    ];
    let sources: Vec<String> = fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
        .expect("src/ is readable")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    for frame in record.lines().skip(1) {
        let Some((_, function)) = frame.split_once(": ") else {
            continue;
        };
        let function = function.trim_start_matches('<');
        if PASS_THROUGH.iter().any(|name| function.starts_with(name)) || function.contains("(library/") {
            continue;
        }
        let source = function
            .rsplit_once('(')
            .and_then(|(_, place)| place.split_once(':'))
            .map(|(file, _)| file);
        return source.is_some_and(|file| sources.iter().any(|ours| ours == file));
    }
    false
}

/// AddressSanitizer on the C side: the programs are instrumented (checked
/// with nm), and with `PYTHONMALLOC=malloc` every block of libpython and of
/// the Rust library goes through ASan's malloc and free as well.
fn run_asan(name: &str) {
    let asan_name = format!("{name}-asan");
    let program = built().programs.join(&asan_name);
    let symbols = Command::new("nm").arg(&program).output().expect("nm runs");
    assert!(
        String::from_utf8_lossy(&symbols.stdout).contains("__asan_init"),
        "{asan_name} was not linked with AddressSanitizer"
    );
    let printed = run(
        &asan_name,
        Some("malloc"),
        &[],
        &[
            ("ASAN_OPTIONS", "detect_leaks=0:halt_on_error=1"),
            ("PYALLOC_TEST_OPS", "100"),
        ],
    );
    assert!(printed.contains("ok "), "{asan_name} ran no case");
}

#[test]
fn exchange_asan() {
    run_asan("exchange");
}

#[test]
fn lifecycle_asan() {
    run_asan("lifecycle");
}

#[test]
fn subinterpreters_asan() {
    run_asan("subinterpreters");
}

//! Builds the C tests in `c_tests/` with `-Wall -Wextra -Werror` against
//! `include/pyalloc.h`, the static library (built by
//! `python/pyalloc/_cargo.py`, the code `pyalloc.setuptools` uses, which takes
//! the archive and its link line from cargo's JSON messages) and the
//! libpython that pyo3-ffi built for, then runs each program under the
//! allocators and tools it must survive, with a timeout: a hang is a failure.
//!
//! AddressSanitizer and valgrind see a private block only when it is a
//! `malloc` block, so their runs set `PYALLOC_PRIVATE_HEAP=system`. A tool
//! or library a test needs and cannot find fails the test, naming it
//! (`scripts/test.sh` installs them).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use std::{env, fs, thread};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
const PYTHON: &str = env!("PYALLOC_BUILD_PYTHON");
/// The C tests link a library with every export they call.
const FEATURES: &str = "global-allocator,demo,testing";
const TIMEOUT: Duration = Duration::from_secs(300);

/// How a program is compiled.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Flavour {
    Plain,
    AddressSanitizer,
}

struct Toolchain {
    include: String,
    libdir: String,
    ldversion: String,
    python_home: String,
}

/// `include`, `LIBDIR`, `LDVERSION` and `base_prefix` of the Python that
/// pyo3-ffi linked, asked of that interpreter.
fn toolchain() -> &'static Toolchain {
    static TOOLCHAIN: OnceLock<Toolchain> = OnceLock::new();
    TOOLCHAIN.get_or_init(|| {
        let output = Command::new(PYTHON)
            .args([
                "-c",
                "import sys, sysconfig\n\
                 print(sysconfig.get_paths()['include'])\n\
                 print(sysconfig.get_config_var('LIBDIR'))\n\
                 print(sysconfig.get_config_var('LDVERSION'))\n\
                 print(sys.base_prefix)",
            ])
            .output()
            .unwrap_or_else(|err| panic!("cannot run {PYTHON}: {err}"));
        assert!(output.status.success(), "{PYTHON} failed to report its config");
        let text = String::from_utf8(output.stdout).expect("UTF-8");
        let [include, libdir, ldversion, python_home]: [String; 4] = text
            .lines()
            .map(String::from)
            .collect::<Vec<_>>()
            .try_into()
            .expect("four lines of config");
        Toolchain {
            include,
            libdir,
            ldversion,
            python_home,
        }
    })
}

/// The static library and its native link flags, built once by `_cargo.py`
/// in this test's target directory.
fn static_library() -> &'static (PathBuf, Vec<String>) {
    static LIBRARY: OnceLock<(PathBuf, Vec<String>)> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        let target_dir = env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| format!("{MANIFEST_DIR}/target"));
        let output = Command::new(PYTHON)
            .current_dir(MANIFEST_DIR)
            .args([
                "python/pyalloc/_cargo.py",
                "Cargo.toml",
                "--features",
                FEATURES,
                "--target-dir",
            ])
            .arg(&target_dir)
            .stderr(Stdio::inherit())
            .output()
            .expect("python runs _cargo.py");
        assert!(output.status.success(), "building the static library failed");
        let report = String::from_utf8(output.stdout).expect("UTF-8");
        let mut lines = report.lines();
        let library = PathBuf::from(lines.next().expect("the archive's path"));
        let flags = lines
            .next()
            .expect("the link flags")
            .split_whitespace()
            .map(String::from)
            .collect();
        (library, flags)
    })
}

/// Where the compiled programs go.
fn programs_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c_tests");
    fs::create_dir_all(&dir).expect("tmpdir is writable");
    dir
}

fn compiler() -> cc::Tool {
    let target = env!("PYALLOC_BUILD_TARGET");
    cc::Build::new()
        .target(target)
        .host(target)
        .opt_level(1)
        .debug(true)
        .cargo_metadata(false)
        .get_compiler()
}

/// Compiles `c_tests/<source>.c` against the library (once per flavour);
/// `shared` makes a shared object instead of a program. Returns the output's
/// path.
fn compile(source: &str, flavour: Flavour, shared: bool) -> PathBuf {
    static COMPILED: Mutex<Option<HashMap<(String, Flavour), PathBuf>>> = Mutex::new(None);
    let mut compiled = COMPILED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let key = (source.to_owned(), flavour);
    if let Some(path) = compiled.get_or_insert_with(HashMap::new).get(&key) {
        return path.clone();
    }
    let (library, native_libs) = static_library();
    let toolchain = toolchain();
    let name = format!("{source}-{flavour:?}").to_lowercase();
    let output = programs_dir().join(if shared {
        format!("lib{name}.so")
    } else {
        name.clone()
    });
    let mut command = compiler().to_command();
    command
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread"])
        .args(["-DPYALLOC_DEMO", "-DPYALLOC_TESTING"])
        .arg("-I")
        .arg(Path::new(MANIFEST_DIR).join("include"))
        .arg("-I")
        .arg(&toolchain.include)
        .arg(
            Path::new(MANIFEST_DIR)
                .join("c_tests")
                .join(format!("{source}.c")),
        )
        .arg("-o")
        .arg(&output)
        .arg(library)
        .arg(format!("-L{}", toolchain.libdir))
        .arg(format!("-lpython{}", toolchain.ldversion))
        .arg(format!("-Wl,-rpath,{}", toolchain.libdir))
        .args(native_libs);
    if shared {
        // An extension module's link: its own copy of pyalloc, hidden.
        command.args(["-shared", "-fPIC", "-Wl,--exclude-libs,ALL"]);
    } else {
        command.arg("-ldl");
    }
    if flavour == Flavour::AddressSanitizer {
        command.args(["-fsanitize=address", "-fno-omit-frame-pointer"]);
    }
    let status = command.status().expect("the C compiler runs");
    assert!(
        status.success(),
        "compiling c_tests/{source}.c failed: {command:?}"
    );
    if flavour == Flavour::AddressSanitizer {
        let symbols = Command::new("nm")
            .arg(&output)
            .output()
            .expect("nm (binutils) runs");
        assert!(
            String::from_utf8_lossy(&symbols.stdout).contains("__asan_init"),
            "{name} was not linked with AddressSanitizer"
        );
    }
    compiled
        .get_or_insert_with(HashMap::new)
        .insert(key, output.clone());
    output
}

/// One run of one program.
struct Run<'a> {
    program: &'a str,
    flavour: Flavour,
    pythonmalloc: Option<&'a str>,
    wrapper: Vec<String>,
    env: Vec<(String, String)>,
}

impl<'a> Run<'a> {
    fn new(program: &'a str) -> Self {
        Run {
            program,
            flavour: Flavour::Plain,
            pythonmalloc: None,
            wrapper: Vec::new(),
            env: Vec::new(),
        }
    }

    fn pythonmalloc(mut self, mode: Option<&'a str>) -> Self {
        self.pythonmalloc = mode;
        self
    }

    fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    fn preload(self, allocator: &str) -> Self {
        let library = common::preloaded_allocator(allocator);
        self.env("LD_PRELOAD", &library)
    }

    /// AddressSanitizer, with every block a `malloc` block: PyMem's
    /// (`PYTHONMALLOC=malloc`) and the private heap's.
    fn asan(mut self) -> Self {
        self.flavour = Flavour::AddressSanitizer;
        self.pythonmalloc(Some("malloc"))
            .env("PYALLOC_PRIVATE_HEAP", "system")
            .env("ASAN_OPTIONS", "detect_leaks=0:halt_on_error=1")
            .env("PYALLOC_TEST_OPS", "100")
    }

    /// Valgrind, with every block a `malloc` block (as `asan`), one log per
    /// process in `log_dir` (the programs fork).
    fn valgrind(mut self, log_dir: &Path) -> Self {
        let _ = fs::remove_dir_all(log_dir);
        fs::create_dir_all(log_dir).expect("writable");
        self.wrapper = vec![
            common::require("valgrind"),
            "--error-exitcode=99".into(),
            "--leak-check=full".into(),
            "--errors-for-leak-kinds=none".into(),
            format!("--log-file={}/%p.log", log_dir.display()),
            format!("--suppressions={MANIFEST_DIR}/c_tests/valgrind-python.supp"),
        ];
        self.pythonmalloc(Some("malloc"))
            .env("PYALLOC_PRIVATE_HEAP", "system")
            .env("PYALLOC_TEST_OPS", "60")
    }

    /// Runs it; fails on a non-zero exit or a timeout, or when it ran no
    /// case. Returns what it printed.
    fn run(self) -> String {
        let program = compile(self.program, self.flavour, false);
        let tag = format!(
            "{}-{}-{}",
            program.file_name().unwrap().to_string_lossy(),
            self.pythonmalloc.unwrap_or("default"),
            self.env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
                .replace('/', "_")
        );
        let log_dir = programs_dir().join("logs");
        fs::create_dir_all(&log_dir).expect("writable");
        let stdout_path = log_dir.join(format!("{}.out", &tag[..tag.len().min(200)]));
        let stderr_path = stdout_path.with_extension("err");
        let wrapper: Vec<&str> = self.wrapper.iter().map(String::as_str).collect();
        let mut command = common::command_under(&wrapper, &program);
        command
            .current_dir(programs_dir())
            .env("PYTHONHOME", &toolchain().python_home)
            .env("PYALLOC_TEST_PROGRAMS", programs_dir())
            .env_remove("PYTHONMALLOC")
            .env_remove("PYTHONPATH")
            .env_remove("LD_PRELOAD")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout_path).expect("writable"))
            .stderr(fs::File::create(&stderr_path).expect("writable"));
        if let Some(mode) = self.pythonmalloc {
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
                assert!(stdout.contains("ok "), "{tag} ran no case");
                stdout
            }
        }
    }
}

/// The shared objects `copies` loads: twelve copies of pyalloc, each hidden
/// in its own module, as extension modules carry them. Made once: tests run
/// in parallel, and rewriting a copy another test has loaded would break it.
fn build_copies() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let built = compile("copy_module", Flavour::Plain, true);
        for copy in 0..12 {
            fs::copy(&built, programs_dir().join(format!("libcopy_{copy:02}.so"))).expect("writable");
        }
    });
}

/// Checks the logs of a valgrind run with `tests/support/pyalloc_checks.py`:
/// no error, and no block that pyalloc's own code allocated lost.
fn assert_valgrind_clean(log_dir: &Path) {
    let logs: Vec<PathBuf> = fs::read_dir(log_dir)
        .expect("logs are readable")
        .flatten()
        .map(|entry| entry.path())
        .collect();
    assert!(!logs.is_empty(), "valgrind wrote no log");
    let output = Command::new(PYTHON)
        .arg(Path::new(MANIFEST_DIR).join("tests/support/pyalloc_checks.py"))
        .args(["valgrind", "--sources"])
        .arg(Path::new(MANIFEST_DIR).join("src"))
        .args(&logs)
        .output()
        .expect("python runs pyalloc_checks.py");
    assert!(
        output.status.success(),
        "valgrind found problems:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// Runs `program` with the interpreter's own allocator, then under the
/// debug hooks on pymalloc and on malloc.
fn under_every_pythonmalloc(program: &str) {
    for mode in [None, Some("debug"), Some("malloc_debug")] {
        Run::new(program).pythonmalloc(mode).run();
    }
}

#[test]
fn exchange() {
    under_every_pythonmalloc("exchange");
}

#[test]
fn lifecycle() {
    under_every_pythonmalloc("lifecycle");
}

#[test]
fn subinterpreters() {
    under_every_pythonmalloc("subinterpreters");
}

#[test]
fn out_of_memory() {
    under_every_pythonmalloc("out_of_memory");
}

#[test]
fn asan() {
    for program in ["exchange", "lifecycle", "subinterpreters", "foreign_blocks"] {
        Run::new(program).asan().run();
    }
}

/// Under valgrind with `PYTHONMALLOC=malloc`, so that it sees every block:
/// no invalid read, write or free anywhere in the exchange, and no block
/// that pyalloc allocated is definitely lost.
#[test]
fn exchange_under_valgrind() {
    let log_dir = programs_dir().join("valgrind-exchange");
    let printed = Run::new("exchange").valgrind(&log_dir).run();
    assert!(printed.contains("ok fork_with_a_queued_block"));
    assert_valgrind_clean(&log_dir);
}

/// pyalloc reads these fields of `PyThreadState` itself: their offsets must
/// be the interpreter's own.
#[test]
fn thread_state_layout() {
    Run::new("layout").run();
}

/// 3.11's thread-state binding (`attached_3_11.rs`): a stale GILState slot is
/// never taken for the GIL, and the documented blind spot is what it is.
#[test]
fn thread_states() {
    for mode in [None, Some("debug")] {
        Run::new("thread_states").pythonmalloc(mode).run();
    }
}

/// Releases racing `Py_FinalizeEx` are never freed into the next interpreter.
#[test]
fn finalization() {
    for mode in [None, Some("debug")] {
        Run::new("finalization").pythonmalloc(mode).run();
    }
}

/// Private blocks shown to tracemalloc (3.15+, `PYALLOC_TRACEMALLOC=1`): a
/// worker's blocks traced in pyalloc's domain and untracked when freed, the
/// GIL holder joining workers with tracing on, `tracemalloc.stop()` and
/// `Py_FinalizeEx` racing workers, a fork child; with the option off, and
/// below 3.15 with it on, nothing traced (`c_tests/tracemalloc.c`).
#[test]
fn tracemalloc() {
    for mode in [None, Some("debug")] {
        for option in ["1", "0"] {
            Run::new("tracemalloc")
                .pythonmalloc(mode)
                .env("PYALLOC_TRACEMALLOC", option)
                .run();
        }
    }
}

/// C's own PyMem blocks of every small size through every entry point.
#[test]
fn foreign_blocks() {
    Run::new("foreign_blocks").run();
}

/// Every program again under malloc replacements that return 8-aligned
/// blocks for small requests, with CPython's own allocators and with
/// `PYTHONMALLOC=malloc` (every PyMem block is then theirs).
#[test]
fn every_program_under_foreign_allocators() {
    build_copies();
    let programs = [
        "exchange",
        "lifecycle",
        "subinterpreters",
        "out_of_memory",
        "thread_states",
        "finalization",
        "foreign_blocks",
        "copies",
        "thread_exit",
        "unload",
    ];
    for allocator in ["jemalloc", "tcmalloc", "mimalloc"] {
        for mode in [None, Some("malloc")] {
            for program in programs {
                Run::new(program).preload(allocator).pythonmalloc(mode).run();
            }
        }
    }
}

/// A `PyMem_SetAllocator` hook that adds a header, as profilers do: 8 bytes
/// (C's blocks are 8 mod 16) and 16 (half of them are 16 mod 32, where
/// pyalloc reads the hook's header as it classifies them).
#[test]
fn header_adding_pymem_hook() {
    for header in ["8", "16"] {
        for mode in [None, Some("debug"), Some("malloc")] {
            Run::new("foreign_blocks")
                .pythonmalloc(mode)
                .env("PYALLOC_TEST_HOOK", header)
                .run();
        }
    }
}

/// Two copies of pyalloc in one process (two extension modules) agree on
/// which blocks are private and release each other's.
#[test]
fn copies_in_one_process() {
    build_copies();
    for mode in [None, Some("debug")] {
        Run::new("copies").pythonmalloc(mode).run();
    }
}

/// A copy in a shared library that is `dlclose`d after it registered its
/// `Py_AtExit` hook stays loaded, and `Py_FinalizeEx` runs the hook.
#[test]
fn unloaded_copy() {
    build_copies();
    for mode in [None, Some("debug")] {
        Run::new("unload").pythonmalloc(mode).run();
    }
}

/// Allocation in thread-exit destructors that run after mimalloc's own, and
/// nothing kept by threads whose pyalloc calls run in key destructors, with
/// either private heap.
#[test]
fn thread_exit() {
    Run::new("thread_exit").run();
    Run::new("thread_exit")
        .env("PYALLOC_PRIVATE_HEAP", "system")
        .run();
}

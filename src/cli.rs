//! The command line: argument parsing (argh), `--check` / `validate`,
//! `--version`, and the exit codes of SPEC.md.
//!
//! It owns what the operator sees before the balancer starts. Running the
//! balancer itself is `run::run`'s job; this module only loads the plan and
//! hands it over.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use argh::FromArgs;

use crate::config;

/// Used when `-c` is not given.
pub const DEFAULT_CONFIG: &str = "conf/nvelox.yaml";

/// Clean shutdown, or a valid configuration under `--check`.
pub const EXIT_OK: i32 = 0;
/// The configuration is invalid.
pub const EXIT_BAD_CONFIG: i32 = 1;
/// Start-up failure: bind refused, permission, fd limit; also bad usage.
pub const EXIT_STARTUP: i32 = 2;

/// nvelox: a layer-4 TCP and UDP load balancer. Without --check it runs
/// the listeners and backends of the configuration file until SIGTERM or
/// SIGINT.
#[derive(FromArgs, Debug, PartialEq, Eq)]
#[argh(
    example = "Check a file before a (re)start or reload:\n  $ {command_name} -c /etc/nvelox/nvelox.yaml --check\nThe same, as an ingress controller calls it:\n  $ {command_name} validate /etc/nvelox/nvelox.yaml\nRun with conf/nvelox.yaml:\n  $ {command_name}",
    note = "Errors are printed one per line, all at once, as FILE:LINE: PATH: message.\nEvery key is documented in docs/config.md.\nSignals while running:\n  SIGTERM, SIGINT  stop accepting; open connections get server.shutdown_timeout\n  SIGHUP           reload the configuration (an invalid one is logged, the old one kept)\n  SIGUSR1          reopen log files",
    error_code(0, "clean shutdown; with --check or validate: the configuration is valid"),
    error_code(1, "bad configuration (every problem is printed)"),
    error_code(
        2,
        "start-up failure (bind refused, permission, file-descriptor limit) or bad command-line usage"
    )
)]
pub struct Cli {
    /// configuration file to load (default: conf/nvelox.yaml)
    #[argh(option, short = 'c', arg_name = "FILE")]
    pub config: Option<PathBuf>,

    /// only check the configuration: parse, validate and resolve it (incl.
    /// includes and host names), print "configuration OK" and exit 0, or
    /// print every error and exit 1; binds nothing
    #[argh(switch)]
    pub check: bool,

    /// print "nvelox X.Y.Z" and exit
    #[argh(switch, short = 'V')]
    pub version: bool,

    #[argh(subcommand)]
    pub command: Option<Command>,
}

#[derive(FromArgs, Debug, PartialEq, Eq)]
#[argh(subcommand)]
pub enum Command {
    Validate(Validate),
}

/// check FILE exactly like `-c FILE --check`: print "configuration OK" and
/// exit 0, or print every error and exit 1.
#[derive(FromArgs, Debug, PartialEq, Eq)]
#[argh(
    subcommand,
    name = "validate",
    error_code(0, "the configuration is valid"),
    error_code(1, "the configuration is invalid (every problem is printed)")
)]
pub struct Validate {
    /// the configuration file to check
    #[argh(positional, arg_name = "FILE")]
    pub file: PathBuf,
}

/// A contradictory command line (argh already refuses unknown flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageError {
    /// `--check` together with the `validate` subcommand.
    CheckAndValidate,
    /// `-c FILE` together with `validate FILE`.
    ConfigAndValidate,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::CheckAndValidate => f.write_str("use either --check or validate, not both"),
            UsageError::ConfigAndValidate => f.write_str(
                "validate takes the file as its argument; drop -c (or use -c FILE --check)",
            ),
        }
    }
}

impl std::error::Error for UsageError {}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Mode {
    Run(PathBuf),
    Check(PathBuf),
    Version,
}

impl Cli {
    /// Parses arguments (without the program name).
    pub fn parse(args: &[&str]) -> Result<Cli, argh::EarlyExit> {
        Cli::from_args(&["nvelox"], args)
    }

    /// Resolves flags into one mode; contradictory combinations are usage errors.
    pub fn mode(self) -> Result<Mode, UsageError> {
        if self.version {
            return Ok(Mode::Version);
        }
        match self.command {
            Some(Command::Validate(v)) => {
                if self.check {
                    return Err(UsageError::CheckAndValidate);
                }
                if self.config.is_some() {
                    return Err(UsageError::ConfigAndValidate);
                }
                Ok(Mode::Check(v.file))
            }
            None => {
                let file = self.config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
                Ok(if self.check {
                    Mode::Check(file)
                } else {
                    Mode::Run(file)
                })
            }
        }
    }
}

/// `--check`: prints the verdict and returns the exit code. Warnings and
/// errors go to `err`, "configuration OK" to `out`.
pub fn check(path: &Path, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    // Write failures (a closed pipe) cannot be reported anywhere better;
    // the exit code still tells the caller the verdict.
    match config::load(path) {
        Ok(plan) => {
            for w in &plan.warnings {
                let _ = writeln!(err, "warning: {w}");
            }
            let _ = writeln!(out, "configuration OK");
            EXIT_OK
        }
        Err(errors) => {
            report_errors(path, &errors, err);
            EXIT_BAD_CONFIG
        }
    }
}

fn report_errors(path: &Path, errors: &config::ConfigErrors, err: &mut dyn Write) {
    for w in &errors.warnings {
        let _ = writeln!(err, "warning: {w}");
    }
    let _ = writeln!(err, "{errors}");
    let n = errors.len();
    let _ = writeln!(
        err,
        "nvelox: configuration {} is invalid ({n} error{})",
        path.display(),
        if n == 1 { "" } else { "s" }
    );
}

/// The whole program, minus `std::process::exit`: returns the exit code.
pub fn main_with_args(args: &[String]) -> i32 {
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let cli = match Cli::parse(&argv) {
        Ok(cli) => cli,
        Err(early) => {
            return match early.status {
                Ok(()) => {
                    println!("{}", early.output);
                    EXIT_OK
                }
                Err(()) => {
                    eprintln!("{}\nRun nvelox --help for more information.", early.output);
                    EXIT_STARTUP
                }
            };
        }
    };
    let mode = match cli.mode() {
        Ok(m) => m,
        Err(msg) => {
            eprintln!("nvelox: {msg}\nRun nvelox --help for more information.");
            return EXIT_STARTUP;
        }
    };
    match mode {
        Mode::Version => {
            println!("nvelox {}", env!("CARGO_PKG_VERSION"));
            EXIT_OK
        }
        Mode::Check(path) => check(&path, &mut std::io::stdout(), &mut std::io::stderr()),
        Mode::Run(path) => match config::load(&path) {
            Ok(plan) => {
                for w in &plan.warnings {
                    eprintln!("warning: {w}");
                }
                crate::run::run(plan, &path)
            }
            Err(errors) => {
                report_errors(&path, &errors, &mut std::io::stderr());
                EXIT_BAD_CONFIG
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::include::tests::TempDir;

    fn mode(args: &[&str]) -> Result<Mode, String> {
        Cli::parse(args)
            .map_err(|e| e.output)?
            .mode()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn modes() {
        assert_eq!(mode(&[]), Ok(Mode::Run(DEFAULT_CONFIG.into())));
        assert_eq!(mode(&["-c", "x.yaml"]), Ok(Mode::Run("x.yaml".into())));
        assert_eq!(
            mode(&["--config", "x.yaml", "--check"]),
            Ok(Mode::Check("x.yaml".into()))
        );
        assert_eq!(mode(&["--check"]), Ok(Mode::Check(DEFAULT_CONFIG.into())));
        assert_eq!(
            mode(&["validate", "y.yaml"]),
            Ok(Mode::Check("y.yaml".into()))
        );
        assert_eq!(mode(&["--version"]), Ok(Mode::Version));
        assert_eq!(mode(&["-V"]), Ok(Mode::Version));
    }

    #[test]
    fn usage_errors() {
        let usage = |args: &[&str]| Cli::parse(args).unwrap().mode().unwrap_err();
        assert_eq!(
            usage(&["--check", "validate", "y.yaml"]),
            UsageError::CheckAndValidate
        );
        assert_eq!(
            usage(&["-c", "x.yaml", "validate", "y.yaml"]),
            UsageError::ConfigAndValidate
        );
        assert!(UsageError::CheckAndValidate.to_string().contains("--check"));
        assert!(mode(&["validate"]).is_err());
        assert!(mode(&["--bogus"]).is_err());
        assert!(mode(&["-c"]).is_err());
        assert_eq!(main_with_args(&["--bogus".to_string()]), EXIT_STARTUP);
    }

    #[test]
    fn help_explains_flags_and_exit_codes() {
        let help = Cli::parse(&["--help"]).unwrap_err();
        assert_eq!(help.status, Ok(()));
        let text = help.output;
        for needle in [
            "-c, --config",
            "--check",
            "--version",
            "validate",
            "conf/nvelox.yaml",
            "configuration OK",
            "Error codes:",
            "0 clean shutdown",
            "1 bad configuration",
            "2 start-up failure",
            "SIGHUP",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
        }
    }

    #[test]
    fn check_prints_ok_or_every_error() {
        let tmp = TempDir::new("cli-check");
        let good = tmp.write(
            "good.yaml",
            "listeners:\n  - { name: a, bind: \"127.0.0.1:1\", backend: b }\nbackends:\n  - { name: b, servers: [\"127.0.0.1:2\"], health_check: { active: { type: tcp } } }\n",
        );
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(check(&good, &mut out, &mut err), EXIT_OK);
        assert_eq!(String::from_utf8_lossy(&out), "configuration OK\n");
        let err = String::from_utf8_lossy(&err);
        assert!(
            err.is_empty(),
            "every key is implemented, so no warning: {err}"
        );

        let bad = tmp.write(
            "bad.yaml",
            "listeners:\n  - name: a\n    bind: \":10-5\"\n    default_backend: nope\n",
        );
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(check(&bad, &mut out, &mut err), EXIT_BAD_CONFIG);
        assert!(out.is_empty());
        let err = String::from_utf8_lossy(&err);
        let bad_s = bad.display();
        assert!(
            err.contains(&format!("{bad_s}:3: listeners[0].bind: ")),
            "{err}"
        );
        assert!(
            err.contains(&format!("{bad_s}:4: listeners[0].default_backend: ")),
            "{err}"
        );
        assert!(err.contains("is invalid (2 errors)"), "{err}");
    }
}

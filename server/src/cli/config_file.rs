//! `loyalty server --config FILE`: every server setting from a TOML file, beside flags and
//! environment variables. A key is a flag's long name (`max-connections = 5000`; `_` may stand for
//! `-`); the file's values are put in front of the command line, so a flag given there still wins,
//! and a setting whose environment variable is set keeps the variable's value. Precedence, highest
//! first: flag, environment, file, default (docs/configuration.md).
//!
//! Done on the argument list rather than inside clap because clap has no layer for files: the
//! file's settings go through the same parsing and checks as typed ones, so a bad value in the
//! file is refused with the same message as on the command line.

use std::ffi::OsString;

/// The arguments with the settings of the `--config` file (or `LOYALTY_CONFIG`) put in front of
/// the command line's own, when the subcommand is `server`; other argument lists unchanged.
pub fn expand(command: &clap::Command, args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    if args.get(1).is_none_or(|a| a != "server") {
        return Ok(args);
    }
    let Some(path) = config_path(&args[2..]) else {
        return Ok(args);
    };
    let server = command
        .find_subcommand("server")
        .ok_or("the program has no server subcommand")?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read the configuration file {}: {e}", path.display()))?;
    let from_file = settings(server, &text)
        .map_err(|e| format!("the configuration file {}: {e}", path.display()))?;
    let mut expanded = args[..2].to_vec();
    expanded.extend(from_file);
    expanded.extend_from_slice(&args[2..]);
    Ok(expanded)
}

/// `--config PATH`, `--config=PATH`, or else `LOYALTY_CONFIG`.
fn config_path(args: &[OsString]) -> Option<std::path::PathBuf> {
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--config" {
            return rest.next().map(Into::into);
        }
        if let Some(path) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            return Some(path.into());
        }
    }
    std::env::var_os("LOYALTY_CONFIG").map(Into::into)
}

/// The file's settings as `--name=value` arguments, in the file's order.
fn settings(server: &clap::Command, text: &str) -> Result<Vec<OsString>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let mut args = Vec::new();
    for (key, value) in table {
        let name = key.replace('_', "-");
        let arg = server
            .get_arguments()
            .find(|a| a.get_long() == Some(name.as_str()) && name != "config")
            .ok_or_else(|| format!("`{key}` is not a setting of `loyalty server` (see --help)"))?;
        if arg
            .get_env()
            .is_some_and(|env| std::env::var_os(env).is_some())
        {
            continue;
        }
        args.extend(flag_values(&name, &value).map_err(|e| format!("`{key}`: {e}"))?);
    }
    Ok(args)
}

/// One setting as arguments: a value as `--name=value`, `true` as the bare flag (`false` leaves
/// it off), and an array as the flag repeated.
fn flag_values(name: &str, value: &toml::Value) -> Result<Vec<OsString>, String> {
    let one = |v: &toml::Value| -> Result<String, String> {
        match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            _ => Err("expected a string, a number, true/false or a list of them".into()),
        }
    };
    Ok(match value {
        toml::Value::Boolean(true) => vec![format!("--{name}").into()],
        toml::Value::Boolean(false) => Vec::new(),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| one(v).map(|v| format!("--{name}={v}").into()))
            .collect::<Result<_, _>>()?,
        other => vec![format!("--{name}={}", one(other)?).into()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};

    fn server() -> Command {
        Command::new("loyalty").subcommand(
            Command::new("server")
                .args_override_self(true)
                .arg(Arg::new("listen").long("listen"))
                .arg(Arg::new("max-connections").long("max-connections"))
                .arg(
                    Arg::new("trusted-proxy")
                        .long("trusted-proxy")
                        .action(ArgAction::Append),
                )
                .arg(Arg::new("flag").long("flag").action(ArgAction::SetTrue))
                .arg(
                    Arg::new("token")
                        .long("token")
                        .env("LOYALTY_CONFIG_TEST_TOKEN_SET"),
                )
                .arg(Arg::new("config").long("config")),
        )
    }

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(Into::into).collect()
    }

    #[test]
    fn settings_become_flags_in_front_of_the_command_line() {
        let file = "listen = \"127.0.0.1:9\"\nmax_connections = 5\ntrusted-proxy = [\"10.0.0.1\", \"10.0.0.2\"]\nflag = true\n";
        let got = settings(server().find_subcommand("server").unwrap(), file).unwrap();
        assert_eq!(
            got,
            args(&[
                "--flag",
                "--listen=127.0.0.1:9",
                "--max-connections=5",
                "--trusted-proxy=10.0.0.1",
                "--trusted-proxy=10.0.0.2",
            ])
        );
    }

    #[test]
    fn a_flag_on_the_command_line_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9\"\nmax-connections = 5\n").unwrap();
        let config = format!("--config={}", path.display());
        let cmd = server();
        let argv = expand(
            &cmd,
            args(&["loyalty", "server", &config, "--listen", "127.0.0.1:7"]),
        )
        .unwrap();
        let matches = cmd.try_get_matches_from(argv).unwrap();
        let (_, m) = matches.subcommand().unwrap();
        assert_eq!(m.get_one::<String>("listen").unwrap(), "127.0.0.1:7");
        assert_eq!(m.get_one::<String>("max-connections").unwrap(), "5");
    }

    #[test]
    fn a_setting_whose_variable_is_set_keeps_the_variable() {
        // SAFETY: the variable is this test's own; no other test reads or writes it.
        unsafe { std::env::set_var("LOYALTY_CONFIG_TEST_TOKEN_SET", "from-env") };
        let got = settings(
            server().find_subcommand("server").unwrap(),
            "token = \"from-file\"\n",
        )
        .unwrap();
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name() {
        let cmd = server();
        let s = cmd.find_subcommand("server").unwrap();
        let e = settings(s, "max_conections = 5\n").unwrap_err();
        assert!(e.contains("`max_conections` is not a setting"), "{e}");
        let e = settings(s, "listen = { host = \"x\" }\n").unwrap_err();
        assert!(e.contains("`listen`"), "{e}");
        let e = settings(s, "config = \"other.toml\"\n").unwrap_err();
        assert!(e.contains("not a setting"), "{e}");
        assert!(settings(s, "listen = \n").is_err(), "not TOML");
    }

    #[test]
    fn other_subcommands_and_no_file_are_left_alone() {
        let cmd = server();
        let admin = args(&["loyalty", "admin", "--config", "x.toml"]);
        assert_eq!(expand(&cmd, admin.clone()).unwrap(), admin);
        let missing = args(&["loyalty", "server", "--config", "/nonexistent/loyalty.toml"]);
        let e = expand(&cmd, missing).unwrap_err();
        assert!(e.contains("cannot read the configuration file"), "{e}");
    }
}

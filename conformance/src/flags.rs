//! Command-line flags of the stand-in binaries (`plexus-apiserver`, `plexus-podresources`):
//! `--flag value` or `--flag=value`, `-h`/`--help` prints the usage and exits 0. Errors are
//! texts ending with the usage, for the binary to print and exit 2.

use std::str::FromStr;

/// The arguments of the process, read flag by flag.
pub struct Flags {
    args: std::vec::IntoIter<String>,
    usage: &'static str,
}

/// One flag as given, with its `=value` when it had one.
pub struct Flag {
    /// The flag, e.g. `--port`.
    pub name: String,
    inline: Option<String>,
}

impl Flags {
    /// The process's arguments (without the program name).
    pub fn from_env(usage: &'static str) -> Flags {
        Flags::new(std::env::args().skip(1).collect(), usage)
    }

    /// Given arguments (without the program name).
    pub fn new(args: Vec<String>, usage: &'static str) -> Flags {
        Flags {
            args: args.into_iter(),
            usage,
        }
    }

    /// The next flag; on `-h` or `--help` prints the usage and exits 0.
    pub fn next_flag(&mut self) -> Option<Flag> {
        let arg = self.args.next()?;
        let flag = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => Flag {
                name: f.to_owned(),
                inline: Some(v.to_owned()),
            },
            _ => Flag {
                name: arg,
                inline: None,
            },
        };
        if flag.name == "--help" || flag.name == "-h" {
            println!("{}", self.usage);
            std::process::exit(0);
        }
        Some(flag)
    }

    /// The value of `flag`: its `=value`, else the next argument.
    pub fn value(&mut self, flag: &Flag) -> Result<String, String> {
        flag.inline
            .clone()
            .or_else(|| self.args.next())
            .ok_or_else(|| format!("{} needs a value\n{}", flag.name, self.usage))
    }

    /// The value of `flag`, parsed.
    pub fn parsed<T: FromStr>(&mut self, flag: &Flag) -> Result<T, String> {
        let v = self.value(flag)?;
        v.parse().map_err(|_| format!("bad {} {v:?}", flag.name))
    }

    /// The error for a flag the binary does not know.
    pub fn unknown(&self, flag: &Flag) -> String {
        format!("unknown argument {:?}\n{}", flag.name, self.usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags {
        Flags::new(args.iter().map(|a| a.to_string()).collect(), "USAGE")
    }

    #[test]
    fn values_inline_or_next_parsed_and_errors() {
        let mut f = flags(&[
            "--port=80",
            "--load",
            "a.yaml",
            "--port",
            "x",
            "-z",
            "--token",
        ]);
        let port = f.next_flag().unwrap();
        assert_eq!(port.name, "--port");
        assert_eq!(f.parsed::<u16>(&port), Ok(80));
        let load = f.next_flag().unwrap();
        assert_eq!(f.value(&load).as_deref(), Ok("a.yaml"));
        let bad = f.next_flag().unwrap();
        assert_eq!(f.parsed::<u16>(&bad), Err("bad --port \"x\"".to_string()));
        let unknown = f.next_flag().unwrap();
        assert_eq!(f.unknown(&unknown), "unknown argument \"-z\"\nUSAGE");
        let last = f.next_flag().unwrap();
        assert_eq!(
            f.value(&last),
            Err("--token needs a value\nUSAGE".to_string())
        );
        assert!(f.next_flag().is_none());
    }
}

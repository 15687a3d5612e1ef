//! `hutch login` and `hutch logout`.

use crate::cli::flags::TlsVerify;
use crate::cli::output::outln;
use crate::registry::credentials::Credentials;
use crate::registry::login;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::{BufRead, IsTerminal, Read, Write};

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The registry (host[:port]; docker.io for Docker Hub)
    #[arg(value_name = "REGISTRY")]
    registry: String,
    /// Username (asked for on a terminal when missing)
    #[arg(short, long)]
    username: Option<String>,
    /// Read the password from standard input (never from the command line)
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    tls: TlsVerify,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// The registry to forget
    #[arg(value_name = "REGISTRY")]
    registry: String,
}

/// Read a line from the terminal with echo off (echo restored after).
fn read_hidden(prompt: &str) -> Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let saved = tcgetattr(&stdin).context("reading the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &quiet).context("turning off the echo")?;
    let mut line = String::new();
    let r = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &saved);
    eprintln!();
    r.context("reading the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

pub fn login(a: LoginArgs) -> Result<i32> {
    let tty = std::io::stdin().is_terminal();
    let username = match a.username {
        Some(u) => u,
        None if tty && !a.password_stdin => {
            eprint!("Username: ");
            let _ = std::io::stderr().flush();
            let mut u = String::new();
            std::io::stdin().lock().read_line(&mut u)?;
            u.trim().to_owned()
        }
        None => bail!("--username is needed when the password comes from standard input"),
    };
    let password = if a.password_stdin {
        let mut p = String::new();
        std::io::stdin()
            .read_to_string(&mut p)
            .context("reading the password from standard input")?;
        p.trim_end_matches(['\n', '\r']).to_owned()
    } else if tty {
        read_hidden("Password: ")?
    } else {
        bail!("no terminal to ask for the password: use --password-stdin");
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    let creds = Credentials { username, password };
    let file = login::login(&a.registry, &creds, a.tls.tls_verify)?;
    outln!("Login succeeded ({} in {})", a.registry, file.display());
    Ok(0)
}

pub fn logout(a: LogoutArgs) -> Result<i32> {
    if login::logout(&a.registry)? {
        outln!("Removed login credentials for {}", a.registry);
        Ok(0)
    } else {
        bail!("not logged in to {}", a.registry)
    }
}

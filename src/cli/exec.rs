//! `hutch exec`: run a command in a running container.

use crate::store::Store;
use anyhow::Result;
use clap::Args;

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Keep stdin open (pass hutch's stdin to the command)
    #[arg(short, long)]
    interactive: bool,
    /// Give the command a terminal (a pty of the container)
    #[arg(short, long)]
    tty: bool,
    /// Run as USER[:GROUP] (names from the container's /etc/passwd, or numbers)
    #[arg(short, long, value_name = "USER[:GROUP]")]
    user: Option<String>,
    /// Working directory inside the container [default: the container's]
    #[arg(short, long, value_name = "DIR")]
    workdir: Option<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to pass hutch's own)
    #[arg(short, long = "env", value_name = "KEY[=VALUE]")]
    env: Vec<String>,
    /// Start the command and return at once (its output is discarded)
    #[arg(short, long)]
    detach: bool,
    /// Container name, ID or unique ID prefix
    container: String,
    /// The command and its arguments
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

/// `hutch exec`: the command's exit status.
pub fn exec(a: ExecArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    crate::run::exec(
        &store,
        &crate::run::ExecRequest {
            container: a.container,
            args: a.command,
            tty: a.tty,
            interactive: a.interactive || a.tty,
            user: a.user,
            workdir: a.workdir,
            env: a.env,
            detach: a.detach,
        },
    )
}

//! `hutch completion SHELL`: a completion script generated from the clap
//! definitions, so it never disagrees with the commands and flags that
//! exist.

use super::output;
use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use clap_complete::Shell;

#[derive(Args, Debug)]
#[command(after_help = "\
Load it for this shell, or install it where your shell looks:
  bash:  source <(hutch completion bash)
         hutch completion bash > ~/.local/share/bash-completion/completions/hutch
  zsh:   hutch completion zsh > ~/.zfunc/_hutch   (with fpath+=(~/.zfunc) before compinit)
  fish:  hutch completion fish > ~/.config/fish/completions/hutch.fish
install.sh installs the bash, zsh and fish scripts under PREFIX/share.")]
pub struct CompletionArgs {
    /// The shell to write a completion script for
    #[arg(value_enum)]
    shell: Shell,
}

pub fn run(a: CompletionArgs) -> Result<i32> {
    let mut cmd = super::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "hutch", &mut script);
    let script = String::from_utf8(script)
        .with_context(|| format!("the generated {} completion script is not UTF-8", a.shell))?;
    output::print(&script);
    Ok(0)
}

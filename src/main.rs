//! The `hutch` binary: parse the command line, run one command, map the
//! outcome to an exit status (125 when hutch itself failed, as Podman does).

#![forbid(unsafe_code)]

fn main() {
    let code = hutch::main();
    std::process::exit(code);
}

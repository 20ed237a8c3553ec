//! The command line: argument parsing and rendering only; every command is one library
//! call (see `main.rs` for exit codes).

pub mod build;
pub mod copy;
pub mod doctor;
pub mod inspect;
pub mod registry;
pub mod slim;

use clap::{Parser, Subcommand};

/// The smallest container image that still runs your application, and the truth about any image.
#[derive(Debug, Parser)]
#[command(name = "pinnace", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
    /// Registry flags (global: every command that reaches a registry honours them).
    #[command(flatten)]
    pub registry: registry::RegistryFlags,
}

/// pinnace's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the smallest image that runs a program: its ELF closure plus the files minimal images need.
    Build(Box<build::BuildArgs>),
    /// Copy an image between OCI layouts, OCI archives, docker archives, podman and docker.
    Copy(copy::CopyArgs),
    /// Show what is in an image and what is wasted: layers, sizes, file tree, dive's figures, CI gates.
    Inspect(Box<inspect::InspectArgs>),
    /// Will this image run, and is it clean: missing programs and libraries, libc and arch mismatches, secrets, waste.
    Doctor(doctor::DoctorArgs),
    /// Log in to a registry: check the credentials and store them in the auth file (mode 0600).
    Login(registry::LoginArgs),
    /// Log out of a registry: remove its credentials from the auth file.
    Logout(registry::LogoutArgs),
    /// Shrink an image by watching it work (traced under probes), then prove the slim image answers the same.
    Slim(Box<slim::SlimArgs>),
    /// Internal: the process that sets up and traces a slim sandbox.
    #[command(name = "__sandbox", hide = true)]
    Sandbox {
        /// The sandbox's work directory.
        work: std::path::PathBuf,
    },
    /// Internal: run a command in a traced sandbox over an unpacked root, print the trace.
    #[command(name = "__trace", hide = true)]
    Trace(slim::TraceArgs),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    pinnace::transport::registry::RegistryOptions::set_global(cli.registry.options());
    match cli.command {
        Command::Build(a) => build::run(*a),
        Command::Copy(a) => copy::run(a),
        Command::Inspect(a) => inspect::run(*a),
        Command::Doctor(a) => doctor::run(a),
        Command::Login(a) => registry::login(a),
        Command::Logout(a) => registry::logout(a),
        Command::Slim(a) => slim::run(*a),
        Command::Sandbox { work } => std::process::exit(pinnace::slim::init::outer_main(&work)),
        Command::Trace(a) => slim::trace(a),
    }
}

pub use pinnace::progress::human_bytes as human;

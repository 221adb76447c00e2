//! `sutazai`: the one binary of the platform. `up` runs every built role in one process,
//! `serve ROLE` runs one, `migrate` prepares the database, `healthcheck URL` is the container
//! HEALTHCHECK (no curl needed), `version` prints the version, `vector import FILE` loads a file of
//! vectors (or documents, with `--embed`) into a running vector service, `chat "question"` streams
//! an answer from a running gateway.

mod admin;
mod chat;
mod commands;
mod config;
mod healthcheck;
mod roles;
mod sse;
mod vector_import;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "sutazai", version, about = "SutazAI: a self-hosted multi-agent AI platform")]
struct Cli {
    /// Configuration file (TOML); overrides the embedded defaults, overridden by SUTAZAI__* variables.
    #[arg(long, global = true, env = "SUTAZAI_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every built role in this process.
    Up,
    /// Run one role.
    Serve {
        /// The role to run.
        #[arg(value_enum)]
        role: roles::Role,
    },
    /// Create each role's schema and apply its migrations, then exit.
    Migrate,
    /// List the roles built into this binary, with their ports.
    Roles,
    /// Exit 0 if URL answers 2xx within the timeout, 1 otherwise.
    Healthcheck {
        /// For example http://127.0.0.1:10010/livez.
        url: String,
        /// How long to wait for the answer.
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
    },
    /// Print the version.
    Version,
    /// Auth administration.
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
    /// Ask a running gateway; the answer streams to stdout as it is generated.
    Chat(chat::ChatArgs),
    /// Vector service tools.
    Vector {
        #[command(subcommand)]
        command: VectorCommand,
    },
}

#[derive(Debug, Subcommand)]
enum VectorCommand {
    /// Upsert the vectors of an .fvecs, .npy or .jsonl file (or, with --embed, the documents of a
    /// .jsonl file) into a collection, in batches.
    Import(vector_import::ImportArgs),
}

#[derive(Debug, Subcommand)]
enum AuthCommand {
    /// Add a new signing key and retire the current one (still served until its tokens expire).
    RotateKeys,
    /// Create an admin account (or promote an existing one). Password from SUTAZAI_ADMIN_PASSWORD or stdin.
    CreateAdmin {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("sutazai {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Roles => {
            roles::print_roles();
            ExitCode::SUCCESS
        }
        Command::Healthcheck { url, timeout_ms } => healthcheck::run(&url, timeout_ms),
        Command::Up => commands::run(commands::Action::Up, cli.config.as_deref()),
        Command::Serve { role } => commands::run(commands::Action::Serve(role), cli.config.as_deref()),
        Command::Migrate => commands::run(commands::Action::Migrate, cli.config.as_deref()),
        Command::Auth { command: AuthCommand::RotateKeys } => {
            commands::run(commands::Action::AuthRotateKeys, cli.config.as_deref())
        }
        Command::Auth { command: AuthCommand::CreateAdmin { username, email } } => {
            commands::run(commands::Action::AuthCreateAdmin { username, email }, cli.config.as_deref())
        }
        // Clients of a running service: they need no platform configuration.
        Command::Vector { command: VectorCommand::Import(args) } => vector_import::run(args),
        Command::Chat(args) => chat::run(args),
    }
}

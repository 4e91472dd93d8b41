//! Options every kubectl plugin user expects, parsed by the plugin itself
//! (kubectl hands its flags through verbatim): kubeconfig selection, the
//! namespace, the output format and colour.

use clap::{Args, Parser, ValueEnum};

/// Parses the process arguments the way both plugins do: on a usage error
/// clap prints it and the process exits [`crate::error::EXIT_USAGE`]; `--help`
/// and `--version` print and exit 0.
pub fn parse_args<C: Parser>() -> Result<C, std::process::ExitCode> {
    C::try_parse().map_err(|e| {
        let code = if e.use_stderr() {
            crate::error::EXIT_USAGE
        } else {
            0
        };
        let _ = e.print();
        std::process::ExitCode::from(code)
    })
}

/// Output formats shared by every command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    Wide,
    Json,
    Yaml,
}

impl OutputFormat {
    pub fn is_table(self) -> bool {
        matches!(self, OutputFormat::Table | OutputFormat::Wide)
    }
}

/// Kubernetes connection options, named as kubectl names them.
#[derive(Debug, Clone, Args, Default)]
#[command(next_help_heading = "Kubernetes options")]
pub struct KubeOpts {
    /// Path to the kubeconfig file (default: $KUBECONFIG, which may list several paths, then ~/.kube/config)
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<String>,
    /// The kubeconfig context to use
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The kubeconfig cluster to use
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,
    /// The kubeconfig user to use
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,
    /// Namespace for the objects this command creates or reads (default: per command)
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

/// Output and logging options.
#[derive(Debug, Clone, Args, Default)]
#[command(next_help_heading = "Output options")]
pub struct OutputOpts {
    /// Output format
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Disable colours (also: NO_COLOR set to any non-empty value)
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Debug logs on stderr (-v info, -vv debug, -vvv trace)
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl OutputOpts {
    /// Colour only on a terminal, and never with --no-color or NO_COLOR.
    pub fn color(&self) -> bool {
        use std::io::IsTerminal;
        !self.no_color
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::io::stdout().is_terminal()
    }

    /// Sets up `tracing` on stderr at the level -v asks for (RUST_LOG wins),
    /// coloured only on a terminal and never with --no-color or NO_COLOR.
    pub fn init_logging(&self) {
        use std::io::IsTerminal;
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_filter(self.verbose)));
        let ansi = !self.no_color
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::io::stderr().is_terminal();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .without_time()
            .try_init();
    }
}

/// The `tracing` filter for `-v` repeated `verbose` times. Without `-v` only
/// our own crates' warnings: the libraries' logs (kube-rs logs every failed
/// connection attempt as an ERROR) would come before, and say less than,
/// the error we print ourselves. `-v` adds everything at info, `-vv` debug,
/// `-vvv` trace, with the HTTP stack's chatter kept at warn.
pub fn log_filter(verbose: u8) -> String {
    let level = match verbose {
        0 => return "off,rke2gpu=warn,kubectl_gpu=warn".into(),
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    format!("{level},hyper=warn,rustls=warn,tower=warn")
}

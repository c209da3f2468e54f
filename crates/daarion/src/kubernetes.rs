//! The distributed shape as Kubernetes objects, made from the build's own
//! services (so they never drift from it): `daarion deploy kubernetes`
//! prints them, `deploy/kubernetes/daarion.yaml` is that output and
//! `tests/deploy.rs` checks both that and the objects against the API's
//! schemas.
//!
//! Per service: a Deployment (`serve <name>` on its standard port,
//! readiness and liveness on `/health`, resources, non-root with a
//! read-only root), a Service, a PodDisruptionBudget and a
//! HorizontalPodAutoscaler (every service keeps its state in PostgreSQL,
//! NATS and Redis). The gateway in front with the route table as a
//! ConfigMap (each upstream the service's own Service), the Ingress to
//! it, the Secret the processes share (placeholders to replace), the LLM
//! providers' keys as a Secret of their own that only the LLM proxy reads
//! (providers name them with `api_key_env`), a Job
//! applying the migrations, and the daily backup as a CronJob on a
//! volume of its own. Documents are JSON, which YAML readers read.

use serde_json::{Value, json};

use crate::SERVICES;

/// What the objects are made for.
pub struct Options {
    pub namespace: String,
    pub image: String,
    /// The Ingress's host rule (every host when absent).
    pub host: Option<String>,
}

/// Services that run two replicas from the start (the busy ones).
const BUSY: &[&str] = &["city", "messaging"];

const SECRET: &str = "daarion";
/// The LLM providers' keys: read by the LLM proxy alone.
const PROVIDER_KEYS: &str = "daarion-llm-keys";
const GATEWAY_PORT: u16 = 8080;

fn labels(name: &str) -> Value {
    json!({ "app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "daarion" })
}

fn meta(name: &str, o: &Options) -> Value {
    json!({ "name": name, "namespace": o.namespace, "labels": labels(name) })
}

/// A container of the image running `args`, listening on `port`.
fn container(name: &str, args: &[String], port: u16, o: &Options) -> Value {
    let probe = |initial: u32| {
        json!({
            "httpGet": { "path": "/health", "port": port },
            "initialDelaySeconds": initial, "periodSeconds": 10, "timeoutSeconds": 3,
            "failureThreshold": 3,
        })
    };
    json!({
        "name": name,
        "image": o.image,
        "args": args,
        "ports": [{ "name": "http", "containerPort": port }],
        "envFrom": [{ "secretRef": { "name": SECRET } }],
        "env": [{ "name": "DAARION__DATA_DIR", "value": "/var/lib/daarion" }],
        "readinessProbe": probe(2),
        "livenessProbe": probe(10),
        "resources": {
            "requests": { "cpu": "100m", "memory": "64Mi" },
            "limits": { "cpu": "1", "memory": "512Mi" },
        },
        "securityContext": {
            "runAsNonRoot": true, "runAsUser": 10001, "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true, "capabilities": { "drop": ["ALL"] },
        },
        "volumeMounts": [{ "name": "data", "mountPath": "/var/lib/daarion" }],
    })
}

fn deployment(name: &str, replicas: u32, container: Value, o: &Options) -> Value {
    let mut volumes = vec![json!({ "name": "data", "emptyDir": {} })];
    if name == "gateway" {
        volumes.push(json!({ "name": "routes", "configMap": { "name": "gateway-routes" } }));
    }
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(name, o),
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app.kubernetes.io/name": name } },
            "template": {
                "metadata": { "labels": labels(name) },
                "spec": {
                    "securityContext": { "seccompProfile": { "type": "RuntimeDefault" } },
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    })
}

fn service(name: &str, port: u16, o: &Options) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service", "metadata": meta(name, o),
        "spec": {
            "selector": { "app.kubernetes.io/name": name },
            "ports": [{ "name": "http", "port": port, "targetPort": "http" }],
        },
    })
}

/// Keeps one pod through voluntary disruptions where there are two.
fn budget(name: &str, replicas: u32, o: &Options) -> Value {
    let mut spec = json!({ "selector": { "matchLabels": { "app.kubernetes.io/name": name } } });
    if replicas > 1 {
        spec["minAvailable"] = json!(1);
    } else {
        spec["maxUnavailable"] = json!(1);
    }
    json!({ "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(name, o), "spec": spec })
}

fn autoscaler(name: &str, replicas: u32, o: &Options) -> Value {
    json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta(name, o),
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
            "minReplicas": replicas, "maxReplicas": replicas.max(1) * 4,
            "metrics": [{ "type": "Resource", "resource": {
                "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 70 },
            }}],
        },
    })
}

/// The gateway's route table with each service at its Service's name.
pub fn routes() -> Result<String, toml::ser::Error> {
    let mut table = crate::default_routes();
    for service in SERVICES {
        if let Some(group) = table.upstreams.get_mut(service.name) {
            group.addresses = vec![format!("{}:{}", service.name, service.port)];
        }
    }
    toml::to_string(&table)
}

/// Every object, as a YAML stream.
pub fn manifests(o: &Options) -> Result<String, toml::ser::Error> {
    let mut objects = vec![json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": { "name": o.namespace, "labels": labels("daarion") },
    })];
    objects.push(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": meta(SECRET, o), "type": "Opaque",
        // Replace before applying (an overlay, or kubectl create secret).
        "stringData": {
            "DATABASE_URL": "postgres://daarion:CHANGE_ME@postgres:5432/daarion",
            "NATS_URL": "nats://nats:4222",
            "REDIS_URL": "redis://redis:6379",
            "DAARION__SERVICE_TOKEN_SECRET": "CHANGE_ME_TO_32_OR_MORE_RANDOM_BYTES",
        },
    }));
    objects.push(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": meta(PROVIDER_KEYS, o), "type": "Opaque",
        // One entry per provider key its settings name with `api_key_env`.
        "stringData": { "OPENAI_API_KEY": "CHANGE_ME" },
    }));
    for s in SERVICES {
        let replicas = if BUSY.contains(&s.name) { 2 } else { 1 };
        let args = ["serve", s.name, "--listen"]
            .iter()
            .map(|a| (*a).to_owned())
            .chain([format!("0.0.0.0:{}", s.port)])
            .collect::<Vec<_>>();
        let mut container = container(s.name, &args, s.port, o);
        if s.name == daarion_llm::SPEC.name
            && let Some(from) = container["envFrom"].as_array_mut()
        {
            from.push(json!({ "secretRef": { "name": PROVIDER_KEYS } }));
        }
        objects.push(deployment(s.name, replicas, container, o));
        objects.push(service(s.name, s.port, o));
        objects.push(budget(s.name, replicas, o));
        objects.push(autoscaler(s.name, replicas, o));
    }
    objects.push(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("gateway-routes", o),
        "data": { "routes.toml": routes()? },
    }));
    let mut gateway = container(
        "gateway",
        &[
            "gateway".into(),
            "--listen".into(),
            format!("0.0.0.0:{GATEWAY_PORT}"),
        ],
        GATEWAY_PORT,
        o,
    );
    if let Some(env) = gateway["env"].as_array_mut() {
        env.push(
            json!({ "name": "DAARION__GATEWAY__ROUTES_FILE", "value": "/etc/daarion/routes.toml" }),
        );
    }
    if let Some(mounts) = gateway["volumeMounts"].as_array_mut() {
        mounts.push(json!({ "name": "routes", "mountPath": "/etc/daarion", "readOnly": true }));
    }
    objects.push(deployment("gateway", 2, gateway, o));
    objects.push(service("gateway", GATEWAY_PORT, o));
    objects.push(budget("gateway", 2, o));
    objects.push(autoscaler("gateway", 2, o));
    let mut rule = json!({ "http": { "paths": [{
        "path": "/", "pathType": "Prefix",
        "backend": { "service": { "name": "gateway", "port": { "number": GATEWAY_PORT } } },
    }]}});
    if let Some(host) = &o.host {
        rule["host"] = json!(host);
    }
    objects.push(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta("daarion", o),
        "spec": { "rules": [rule] },
    }));
    let job_pod = |command: Value, volumes: Value, mounts: Value| {
        let mut c = container("daarion", &[], GATEWAY_PORT, o);
        if let Some(c) = c.as_object_mut() {
            for key in ["ports", "readinessProbe", "livenessProbe", "args"] {
                c.remove(key);
            }
            c.insert("command".into(), command);
            c.insert("volumeMounts".into(), mounts);
        }
        json!({
            "restartPolicy": "OnFailure",
            "securityContext": { "seccompProfile": { "type": "RuntimeDefault" } },
            "containers": [c],
            "volumes": volumes,
        })
    };
    let scratch = json!([{ "name": "data", "emptyDir": {} }]);
    let scratch_mount = json!([{ "name": "data", "mountPath": "/var/lib/daarion" }]);
    objects.push(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": meta("daarion-migrate", o),
        "spec": { "backoffLimit": 3, "template": { "spec": job_pod(
            json!(["daarion", "migrate"]), scratch.clone(), scratch_mount.clone(),
        )}},
    }));
    objects.push(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta("daarion-backups", o),
        "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "20Gi" } } },
    }));
    let mut backup_mounts = scratch_mount;
    if let Some(m) = backup_mounts.as_array_mut() {
        m.push(json!({ "name": "backups", "mountPath": "/backups" }));
    }
    let mut backup_volumes = scratch;
    if let Some(v) = backup_volumes.as_array_mut() {
        v.push(json!({ "name": "backups", "persistentVolumeClaim": { "claimName": "daarion-backups" } }));
    }
    let mut pod = job_pod(
        json!(["/bin/sh", "-c", "daarion backup && daarion backup prune"]),
        backup_volumes,
        backup_mounts,
    );
    if let Some(env) = pod["containers"][0]["env"].as_array_mut() {
        env.push(json!({ "name": "DAARION__BACKUP__DIR", "value": "/backups" }));
    }
    objects.push(json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta("daarion-backup", o),
        "spec": {
            // The seeds' node standard: daily at 03:00 UTC.
            "schedule": "0 3 * * *", "timeZone": "Etc/UTC", "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 3,
            "jobTemplate": { "spec": { "backoffLimit": 2, "template": { "spec": pod } } },
        },
    }));
    let mut out = String::from(
        "# DAARION's distributed shape for Kubernetes, made by `daarion deploy kubernetes`\n\
         # from the build's services. Replace the Secret's placeholders first.\n",
    );
    for object in objects {
        out.push_str("---\n");
        out.push_str(&object.to_string());
        out.push('\n');
    }
    Ok(out)
}

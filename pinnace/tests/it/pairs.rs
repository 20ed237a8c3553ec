//! `pinnace copy` through every source/sink pair of the file transports, and the daemons
//! (podman's containers-storage, the Docker Engine) as source and as sink; every output
//! is checked with skopeo, umoci, podman (and docker) and pinnace's own validate.

use serde_json::Value;

use crate::check::{self, Written};
use crate::fixture::Fixture;
use crate::util::{cmd, docker_lock, podman_lock, run, run_ok, tempdir};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Oci,
    OciArchive,
    DockerArchive,
    Podman,
    Docker,
}

fn tools(k: Kind) -> &'static [&'static str] {
    match k {
        Kind::Docker | Kind::DockerArchive => &["docker"],
        _ => &[],
    }
}

fn file_source(fx: &Fixture, k: Kind) -> String {
    match k {
        Kind::Oci => format!("oci:{}", fx.oci_dir.display()),
        Kind::OciArchive => format!("oci-archive:{}", fx.oci_archive.display()),
        Kind::DockerArchive => format!("docker-archive:{}", fx.docker_archive.display()),
        _ => unreachable!(),
    }
}

/// Runs `pinnace copy --json` and checks the report against the fixture.
fn copy_json(fx: &Fixture, src: &str, dst: &str) -> Value {
    let o = crate::util::pinnace_ok(&["copy", "--json", src, dst]);
    let v: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("--json output: {e}: {}", o.stdout));
    assert_eq!(v["config_digest"].as_str(), Some(fx.config_digest.as_str()), "{v}");
    let diff_ids: Vec<&str> = v["layers"].as_array().unwrap().iter().map(|l| l["diff_id"].as_str().unwrap()).collect();
    assert_eq!(diff_ids, fx.diff_ids, "{v}");
    v
}

fn pair(src: Kind, dst: Kind) {
    let fx = crate::fixture!();
    if !crate::util::require_tools(tools(src)) || !crate::util::require_tools(tools(dst)) {
        return;
    }
    let d = tempdir();
    let out_dir = d.path().join("out");
    let out_tar = d.path().join("out.tar");
    let sink_name = format!("localhost/pinnace-it-{}-sink:1", std::process::id());
    let (dst_ref, written) = match dst {
        Kind::Oci => (format!("oci:{}:t1", out_dir.display()), Some(Written::Oci(&out_dir, "t1"))),
        Kind::OciArchive => {
            (format!("oci-archive:{}:t1", out_tar.display()), Some(Written::OciArchive(&out_tar, "t1")))
        }
        Kind::DockerArchive => {
            (format!("docker-archive:{}", out_tar.display()), Some(Written::DockerArchive(&out_tar)))
        }
        Kind::Podman => (format!("containers-storage:{sink_name}"), None),
        Kind::Docker => (format!("docker-daemon:{sink_name}"), None),
    };

    let report = match src {
        Kind::Podman => {
            // Put the fixture into podman's store only for the time of the copy.
            let _l = podman_lock();
            let _ = run(cmd("podman").args(["rmi", "-f", fx.id()]));
            run_ok(cmd("podman").args(["load", "-q", "-i"]).arg(&fx.docker_archive));
            let r = copy_json(fx, &format!("containers-storage:{}", fx.name), &dst_ref);
            let _ = run(cmd("podman").args(["rmi", "-f", fx.id()]));
            r
        }
        Kind::Docker => {
            let _l = docker_lock();
            let _ = run(cmd("docker").args(["rmi", "-f", fx.id()]));
            crate::util::at_exit(crate::util::Cleanup::DockerImage(fx.id().to_string()));
            run_ok(cmd("docker").args(["load", "-q", "-i"]).arg(&fx.docker_archive));
            let r = copy_json(fx, &format!("docker-daemon:{}", fx.name), &dst_ref);
            let _ = run(cmd("docker").args(["rmi", "-f", fx.id()]));
            r
        }
        _ => match dst {
            Kind::Podman => {
                let _l = podman_lock();
                crate::util::at_exit(crate::util::Cleanup::PodmanImage(fx.id().to_string()));
                let _ = run(cmd("podman").args(["rmi", "-f", fx.id()]));
                let r = copy_json(fx, &file_source(fx, src), &dst_ref);
                let inspect = run(cmd("podman").args(["image", "inspect", "--format", "{{.Id}}", &sink_name]));
                let o = run(cmd("podman").args(["run", "--rm", "--network", "none", &sink_name]));
                let _ = run(cmd("podman").args(["rmi", "-f", fx.id()]));
                assert_eq!(inspect.stdout.trim(), fx.id(), "image ID in podman: {}", inspect.stderr);
                assert!(o.status.success(), "podman run {sink_name}: {}", o.stderr);
                assert_eq!(o.stdout.trim_end(), fx.line);
                r
            }
            Kind::Docker => {
                let _l = docker_lock();
                crate::util::at_exit(crate::util::Cleanup::DockerImage(fx.id().to_string()));
                let _ = run(cmd("docker").args(["rmi", "-f", fx.id()]));
                let r = copy_json(fx, &file_source(fx, src), &dst_ref);
                let inspect = run(cmd("docker").args(["image", "inspect", "--format", "{{.Id}}", &sink_name]));
                let o = run(cmd("docker").args(["run", "--rm", "--network", "none", &sink_name]));
                let _ = run(cmd("docker").args(["rmi", "-f", fx.id()]));
                assert_eq!(inspect.stdout.trim(), fx.config_digest, "image ID in docker: {}", inspect.stderr);
                assert!(o.status.success(), "docker run {sink_name}: {}", o.stderr);
                assert_eq!(o.stdout.trim_end(), fx.line);
                r
            }
            _ => copy_json(fx, &file_source(fx, src), &dst_ref),
        },
    };

    // Between OCI layouts and OCI archives the layers pass byte for byte and the manifest
    // (so its digest) is kept.
    let oci_like = |k| matches!(k, Kind::Oci | Kind::OciArchive);
    if oci_like(src) && oci_like(dst) {
        assert_eq!(report["manifest_kept"], Value::Bool(true), "{report}");
        assert_eq!(report["manifest_digest"].as_str(), Some(fx.manifest_digest.as_str()), "{report}");
        let blobs: Vec<&str> =
            report["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap()).collect();
        assert_eq!(blobs, fx.layer_blobs);
    }
    if let Some(w) = written {
        if oci_like(dst) {
            assert_eq!(check::skopeo_digest(&w.reference()), report["manifest_digest"].as_str().unwrap());
        }
        check::output_is_good(fx, &w);
    }
}

macro_rules! pairs {
    ($($name:ident: $src:ident -> $dst:ident;)*) => {
        $(
            #[test]
            fn $name() {
                pair(Kind::$src, Kind::$dst);
            }
        )*
    };
}

pairs! {
    oci_to_oci: Oci -> Oci;
    oci_to_oci_archive: Oci -> OciArchive;
    oci_to_docker_archive: Oci -> DockerArchive;
    oci_archive_to_oci: OciArchive -> Oci;
    oci_archive_to_oci_archive: OciArchive -> OciArchive;
    oci_archive_to_docker_archive: OciArchive -> DockerArchive;
    docker_archive_to_oci: DockerArchive -> Oci;
    docker_archive_to_oci_archive: DockerArchive -> OciArchive;
    docker_archive_to_docker_archive: DockerArchive -> DockerArchive;
    containers_storage_to_oci: Podman -> Oci;
    containers_storage_to_docker_archive: Podman -> DockerArchive;
    docker_daemon_to_oci_archive: Docker -> OciArchive;
    docker_daemon_to_docker_archive: Docker -> DockerArchive;
    oci_to_containers_storage: Oci -> Podman;
    docker_archive_to_containers_storage: DockerArchive -> Podman;
    oci_archive_to_docker_daemon: OciArchive -> Docker;
    oci_to_docker_daemon: Oci -> Docker;
}

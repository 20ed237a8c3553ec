//! pinnace's integration tests: one binary that runs the real `pinnace` executable and the
//! real tools (podman, skopeo, umoci, docker) in temp dirs. A missing tool fails a test
//! under `CI=true` and skips it (with a message) elsewhere.
//!
//! - [`pairs`]: every source/sink pair, each output checked by skopeo, umoci, podman, docker.
//! - [`roundtrip`]: chains of conversions keep config, diff_ids and (where possible) digests.
//! - [`corrupt`]: a flipped byte in any blob fails the copy naming the blob.
//! - [`atomic`]: SIGKILL mid-copy leaves the previous destination intact.
//! - [`cli`]: exit codes and error messages.
//! - [`hostile`]: the layer reader's defined outcome for each kind of hostile tar.
//! - [`hostile_copy`]: hostile layers through a full copy write nothing outside the destination.
//! - [`build`]: `pinnace build` of real C, Go and Rust programs, each image run by podman.
//! - [`props`]: property tests over arbitrary bytes (no panic, no hang).
//! - [`slim`]: `pinnace slim` of real Debian images (Python, Node, Java, Perl, C), verified.

mod atomic;
mod build;
mod check;
mod cli;
mod corrupt;
mod deb;
mod doctor;
mod fixture;
mod hostile;
mod hostile_copy;
mod inspect;
mod jibber;
mod multigzip;
mod pairs;
mod props;
mod registry;
mod roundtrip;
mod sandbox;
mod slim;
mod tarcraft;
mod util;

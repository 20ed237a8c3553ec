//! `pinnace slim`: run an image in a sandbox, record every file it touches while probes
//! exercise it, rebuild the image from those files (plus what the record cannot show:
//! ELF closures, shebang interpreters, symlink chains, glibc's dlopen'ed modules), then
//! run the same probes against the result and write it only when every probe agrees.
//!
//! The pieces, in the order a run uses them:
//! - [`unpack`]: the image's final filesystem written safely into a private directory
//!   (the sandbox's read-only lower layer), with its [`FsTree`](crate::fs::FsTree).
//! - [`sandbox`]: the unpacked root run in new mount/pid/net/uts/ipc namespaces
//!   (overlayfs on top, so the unpacked tree stays pristine), every process traced by
//!   [`trace`] (a seccomp filter that stops only file-related syscalls, answered by a
//!   supervisor through seccomp user notifications, or ptrace on kernels before 5.5).
//! - [`probe`]: HTTP and exec probes and their comparison, against any [`probe::ProbeTarget`].
//! - [`keep`]: the keep-set: traced paths resolved through the tree, and why each is kept.
//! - [`rebuild`]: the slim image, written with the one layer writer.
//! - [`verify`]: the slim image run by docker or podman with the same probes.

pub mod init;
pub mod keep;
pub mod probe;
pub mod rebuild;
pub mod run;
pub mod sandbox;
pub mod trace;
pub mod tracer;
pub mod unpack;
pub mod verify;
mod witness;

pub use run::{slim, SlimError, SlimOptions, SlimReport};

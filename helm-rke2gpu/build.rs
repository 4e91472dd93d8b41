//! Build metadata for `helm rke2gpu version` (see ../kubectl-gpu/build_stamp.rs).

include!("../kubectl-gpu/build_stamp.rs");

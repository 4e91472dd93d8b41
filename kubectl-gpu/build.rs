//! Build metadata for `kubectl gpu version` (see build_stamp.rs).

include!("build_stamp.rs");

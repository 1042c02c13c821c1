//! What this binary is: version, git revision and compiler, stamped by `build.rs`.

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("SES_EXPORTER_BUILD_REVISION");
pub const RUSTC_VERSION: &str = env!("SES_EXPORTER_BUILD_RUSTC");
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("SES_EXPORTER_BUILD_REVISION"),
    ", rustc ",
    env!("SES_EXPORTER_BUILD_RUSTC"),
    ")"
);

//! The node.js toolchains some end-to-end tests drive (the JavaScript client's automerge, the
//! console's Playwright with Chromium): where they are installed, and what happens when they are
//! not — the test skips, unless its `LOYALTY_REQUIRE_…` variable (set by the test command, which
//! installs them) makes the absence a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One toolchain a test needs.
pub struct NodeToolchain {
    /// The variable naming its `node_modules` folder, and the folder without it.
    pub dir_var: &'static str,
    pub default_dir: &'static str,
    /// A file inside `node_modules` that is there once the package is installed.
    pub package_file: &'static str,
    /// Files outside `node_modules` it needs too (a browser).
    pub programs: &'static [&'static str],
    /// The variable that turns a missing toolchain from a skip into a failure.
    pub require_var: &'static str,
}

impl NodeToolchain {
    /// Its `node_modules` folder when node, the package and the programs are all present;
    /// `None` (the caller skips) otherwise, or a panic when `require_var` is set.
    pub fn modules(&self) -> Option<PathBuf> {
        let dir = std::env::var_os(self.dir_var)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(self.default_dir));
        let node = Command::new("node").arg("--version").output();
        let ready = dir.join(self.package_file).exists()
            && self.programs.iter().all(|p| Path::new(p).exists())
            && node.is_ok_and(|o| o.status.success());
        if !ready {
            assert!(
                std::env::var_os(self.require_var).is_none(),
                "node, {} and {} in {} are required ({} is set)",
                self.programs.join(", "),
                self.package_file,
                dir.display(),
                self.require_var
            );
            eprintln!(
                "skipped: node, {} or {} is missing",
                self.programs.join(", "),
                dir.display()
            );
        }
        ready.then_some(dir)
    }
}

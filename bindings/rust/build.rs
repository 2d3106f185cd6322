//! Links libattn (the C library in this repository).
//!
//! 1. `ATTN_LIB_DIR`: the directory holding `libattn.so` (a CMake build tree or `<prefix>/lib`).
//!    It is added to the link search path, and to the run path of this crate's own tests and
//!    examples so that `cargo test` runs them without LD_LIBRARY_PATH.
//! 2. Otherwise `pkg-config --libs attn` (an installed libattn; `cmake --install` writes attn.pc).
//!    If the library lives outside the linker's default directories, this crate's tests and examples
//!    get its libdir as their run path too.
//! 3. Otherwise the build fails with a message saying how to point it at the library.
//!
//! No crates.io build dependencies: pkg-config is run as a command.

use std::env;
use std::path::Path;
use std::process::{exit, Command};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ATTN_LIB_DIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_SYSROOT_DIR");

    if let Some(dir) = env::var_os("ATTN_LIB_DIR").filter(|d| !d.is_empty()) {
        let dir = Path::new(&dir);
        if !dir.join("libattn.so").exists() && !dir.join("libattn.dylib").exists() && !dir.join("attn.lib").exists() {
            fail(&format!(
                "ATTN_LIB_DIR={} holds no libattn shared library (libattn.so). Point it at the \
                 directory where CMake built libattn (e.g. build/) or at <prefix>/lib of an installation.",
                dir.display()
            ));
        }
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        println!("cargo:rustc-link-search=native={}", dir.display());
        println!("cargo:rustc-link-lib=dylib=attn");
        rpath(&dir.display().to_string());
        println!("cargo:lib_dir={}", dir.display());
        return;
    }

    match pkg_config_libs() {
        Ok(flags) => {
            let mut linked = false;
            for flag in &flags {
                if let Some(dir) = flag.strip_prefix("-L") {
                    println!("cargo:rustc-link-search=native={}", dir);
                    if !is_default_lib_dir(dir) {
                        rpath(dir);
                    }
                } else if let Some(lib) = flag.strip_prefix("-l") {
                    println!("cargo:rustc-link-lib=dylib={}", lib);
                    linked |= lib == "attn";
                }
            }
            if !linked {
                fail(&format!("`pkg-config --libs attn` printed no -lattn (got: {})", flags.join(" ")));
            }
        }
        Err(why) => fail(&format!(
            "libattn not found. Either set ATTN_LIB_DIR to the directory holding libattn.so (for a \
             CMake build tree: ATTN_LIB_DIR=/path/to/build), or install libattn so that \
             `pkg-config --libs attn` finds it (for a custom prefix: \
             PKG_CONFIG_PATH=<prefix>/lib/pkgconfig). pkg-config said: {}",
            why
        )),
    }
}

/// Run path for this crate's own tests and examples (link args of a build script are not passed
/// on to crates that depend on this one).
fn rpath(dir: &str) {
    if env::var("CARGO_CFG_TARGET_OS").map(|os| os != "windows" && os != "macos").unwrap_or(true) {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir);
    }
}

fn pkg_config_libs() -> Result<Vec<String>, String> {
    let out = Command::new("pkg-config")
        .args(["--libs", "attn"])
        .output()
        .map_err(|e| format!("cannot run pkg-config: {}", e))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(if msg.is_empty() { format!("pkg-config exited with {}", out.status) } else { msg });
    }
    Ok(String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect())
}

fn is_default_lib_dir(dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    ["/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib"].contains(&dir)
        || dir.starts_with("/usr/lib/") && !dir[9..].contains('/')
        || dir.starts_with("/lib/") && !dir[5..].contains('/')
}

fn fail(msg: &str) -> ! {
    eprintln!("error: attn (bindings/rust/build.rs): {}", msg);
    exit(1);
}

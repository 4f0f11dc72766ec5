//! Compiles the eBPF director (`bpf/director.c`) with Debian's clang; the object is embedded
//! in the library with `include_bytes!`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = "bpf/director.c";
    println!("cargo:rerun-if-changed={source}");
    let object = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("director.o");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    println!("cargo:rerun-if-env-changed=CLANG");
    let output = Command::new(&clang)
        .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"])
        // asm/types.h lives under the multiarch directory on Debian.
        .arg("-I/usr/include/x86_64-linux-gnu")
        .args(["-c", source, "-o"])
        .arg(&object)
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run {clang} to compile the eBPF director ({error}): install clang and \
                 libbpf-dev (apt-get install clang libbpf-dev)"
            )
        });
    if !output.status.success() {
        panic!(
            "{clang} failed to compile {source} (are clang and libbpf-dev installed?):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

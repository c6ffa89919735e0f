//! The committed header matches the code: cbindgen's output for this crate.

#[test]
fn committed_header_matches_the_code() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let config =
        cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::generate_with_config(dir, config)
        .expect("cbindgen parses the crate")
        .write(&mut generated);
    let committed = std::fs::read(format!("{dir}/include/carma.h")).unwrap_or_default();
    if std::env::var_os("CARMA_BLESS").is_some() {
        std::fs::write(format!("{dir}/include/carma.h"), &generated).unwrap();
        return;
    }
    assert!(
        committed == generated,
        "carma-ffi/include/carma.h is stale: rerun with CARMA_BLESS=1 cargo test -p carma-ffi --test header"
    );
}

//! Arbitrary bytes as the reference service's configuration file, through
//! `Config::load`: see `examples::fuzzing::check_config` for what holds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|toml: &[u8]| {
    if let Err(violation) = examples::fuzzing::check_config(toml) {
        panic!("{violation}");
    }
});

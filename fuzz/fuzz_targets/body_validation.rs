//! Arbitrary bytes as the JSON body of `POST /v1/items`, through
//! `Valid<NewItem>`: see `examples::fuzzing::check_body` for what holds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Err(violation) = examples::fuzzing::check_body(Some("application/json"), body) {
        panic!("{violation}");
    }
});

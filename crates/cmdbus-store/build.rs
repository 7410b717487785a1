//! `sqlx::migrate!` embeds the migrations when this crate compiles, and Cargo does not know it
//! reads them: without this, a new or changed migration is left out until something else
//! rebuilds the crate.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}

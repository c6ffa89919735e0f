//! The `carma` command.

fn main() {
    println!("carma: not yet implemented");
}

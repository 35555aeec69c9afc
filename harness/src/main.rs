fn main() {
    std::process::exit(lockbench::cli::main());
}

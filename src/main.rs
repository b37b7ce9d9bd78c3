// mimalloc: hyper allocates a fresh read buffer and header storage per
// message; glibc's malloc spends several hundred instructions on each.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    keygate::cli::main()
}

//! `cairnd`: the Cairn node binary.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("cairnd is not built yet")
}

use redis::cluster::ClusterClient;
use redis::Commands;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

/// A `tessera cluster dev` of three nodes, stopped when dropped.
struct DevCluster {
    base: u16,
    child: Child,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Three consecutive ports whose Raft ports (+10000) are free too.
fn free_base_port() -> u16 {
    let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
    let seed = std::process::id() as u16;
    (0..2000u16)
        .map(|i| 30000 + (seed.wrapping_add(i * 7) % 9000))
        .find(|&base| (0..3).all(|i| free(base + i) && free(base + i + 10000)))
        .expect("free ports")
}

impl DevCluster {
    fn start() -> DevCluster {
        let base = free_base_port();
        let dir = std::env::temp_dir().join(format!("tessera-e2e-cluster-{base}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args([
                "cluster",
                "dev",
                "--nodes",
                "3",
                "--base-port",
                &base.to_string(),
            ])
            .args(["--dir", dir.to_str().expect("utf-8 path")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tessera cluster dev");
        let stdout = child.stdout.take().expect("stdout");
        let ready = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.starts_with("cluster ready"));
        assert!(ready, "the cluster did not become ready");
        DevCluster {
            base,
            child,
            _dir: TempDir(dir),
        }
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        // SAFETY: signalling our own child; it stops its nodes.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

#[test]
fn the_redis_crates_cluster_client_reads_its_writes() {
    let cluster = DevCluster::start();
    let seeds = vec![format!("redis://127.0.0.1:{}/", cluster.base + 1)];
    let client = ClusterClient::new(seeds).expect("cluster client");
    let mut con = client.get_connection().expect("connect");
    for i in 0..300 {
        let _: () = con.set(format!("crate:{i}"), i).unwrap();
    }
    for i in 0..300 {
        let v: i64 = con.get(format!("crate:{i}")).unwrap();
        assert_eq!(v, i);
    }
    let n: i64 = con.incr("crate:counter", 5).unwrap();
    assert_eq!(n, 5);
    let len: usize = con.rpush("crate:list", &["a", "b"]).unwrap();
    assert_eq!(len, 2);
    let _: () = con.mset(&[("{crate}a", "1"), ("{crate}b", "2")]).unwrap();
    let both: Vec<String> = con.mget(&["{crate}a", "{crate}b"]).unwrap();
    assert_eq!(both, ["1", "2"]);
}

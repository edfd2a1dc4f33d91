//! Throwaway backing servers for engine and consumer tests: `nats-server` (with JetStream) and
//! PostgreSQL in a fresh data directory, each on a given loopback port, stopped (and its data
//! removed) on drop. `scripts/install-test-deps.sh` installs both from Debian's packages.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Waits until `127.0.0.1:port` accepts connections, at most 20 s.
fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fresh empty directory under the system temp dir.
fn scratch_dir(what: &str, port: u16) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gyre-{what}-{port}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A running `nats-server`, killed on drop.
pub struct Nats {
    child: Child,
    dir: PathBuf,
    /// `nats://127.0.0.1:<port>`.
    pub url: String,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `nats-server` with JetStream (its store in a throwaway directory) on `port`.
pub fn spawn_nats(port: u16) -> Nats {
    spawn_nats_with(port, &[])
}

/// [`spawn_nats`] with extra `nats-server` arguments (TLS files, say).
pub fn spawn_nats_with(port: u16, extra: &[String]) -> Nats {
    let dir = scratch_dir("nats", port);
    let child = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(&dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nats-server (run scripts/install-test-deps.sh)");
    wait_port(port, "nats-server");
    Nats {
        child,
        dir,
        url: format!("nats://127.0.0.1:{port}"),
    }
}

/// A running PostgreSQL server in a throwaway data directory, stopped on drop.
pub struct Postgres {
    child: Child,
    dir: PathBuf,
    /// `postgres://postgres@127.0.0.1:<port>/postgres?sslmode=disable` (trust authentication).
    pub dsn: String,
    /// The server's port.
    pub port: u16,
    /// Extra server settings (`-c` pairs).
    extra: Vec<String>,
    /// The directory of its Unix socket (`host=<dir>` reaches it without TCP).
    pub socket_dir: PathBuf,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The directory holding PostgreSQL's server programs (`initdb`, `postgres`): on `PATH`, or
/// Debian's `/usr/lib/postgresql/<version>/bin`.
fn postgres_bin() -> PathBuf {
    let on_path = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|p| PathBuf::from(p.trim()));
    if let Some(initdb) = on_path
        && let Ok(real) = initdb.canonicalize()
        && let Some(dir) = real.parent()
    {
        return dir.to_path_buf();
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (run scripts/install-test-deps.sh)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("no PostgreSQL server programs found")
}

/// Runs `program args` as the `postgres` user when this process is root (PostgreSQL refuses
/// to run as root), else as ourselves.
fn as_postgres_user(program: &Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Starts PostgreSQL on `port` in a new data directory (trust authentication, loopback only,
/// `wal_level=logical`), and waits until it accepts connections.
pub fn spawn_postgres(port: u16) -> Postgres {
    spawn_postgres_with(port, None)
}

/// [`spawn_postgres`] accepting TLS connections only, with this server certificate and key
/// (PEM).
pub fn spawn_postgres_tls(port: u16, cert_pem: &str, key_pem: &str) -> Postgres {
    spawn_postgres_with(port, Some((cert_pem, key_pem)))
}

fn spawn_postgres_with(port: u16, tls: Option<(&str, &str)>) -> Postgres {
    let bin = postgres_bin();
    let dir = scratch_dir("postgres", port);
    let _ = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(&dir)
        .status();
    let data = dir.join("data");
    let status = as_postgres_user(&bin.join("initdb"))
        .args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
            "-D",
        ])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run initdb");
    assert!(status.success(), "initdb failed");
    let mut extra = Vec::new();
    if let Some((cert, key)) = tls {
        std::fs::write(data.join("server.crt"), cert).expect("write server.crt");
        std::fs::write(data.join("server.key"), key).expect("write server.key");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .expect("write pg_hba.conf");
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&data)
            .status();
        let _ = Command::new("chmod")
            .arg("600")
            .arg(data.join("server.key"))
            .status();
        for setting in [
            "ssl=on",
            "ssl_cert_file=server.crt",
            "ssl_key_file=server.key",
        ] {
            extra.push("-c".to_owned());
            extra.push(setting.to_owned());
        }
    }
    let child = start_postgres(&bin, &dir, port, &extra);
    let mode = if tls.is_some() { "require" } else { "disable" };
    Postgres {
        child,
        socket_dir: dir.clone(),
        dir,
        dsn: format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode={mode}"),
        port,
        extra,
    }
}

/// Runs the server of the data directory under `dir` on `port` and waits until it answers.
fn start_postgres(bin: &Path, dir: &Path, port: u16, extra: &[String]) -> Child {
    let child = as_postgres_user(&bin.join("postgres"))
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"])
        .arg(dir)
        .args([
            "-c",
            "fsync=off",
            "-c",
            "wal_level=logical",
            "-c",
            "max_connections=200",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn postgres");
    wait_port(port, "postgres");
    // Accepting TCP precedes accepting queries by a moment: wait for pg_isready too.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !Command::new(bin.join("pg_isready"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "postgres did not get ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

impl Postgres {
    /// Stops the server (fast shutdown: clients are disconnected, data is kept), waits
    /// `down`, and starts it again on the same port and data.
    pub fn restart(&mut self, down: Duration) {
        self.stop();
        std::thread::sleep(down);
        self.child = start_postgres(&postgres_bin(), &self.dir, self.port, &self.extra);
    }

    fn stop(&mut self) {
        // SIGINT is PostgreSQL's "fast shutdown". The child may be `runuser`, which does not
        // pass it on: signal the server itself (its pid heads `postmaster.pid`).
        let server = std::fs::read_to_string(self.dir.join("data").join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().map(|l| l.trim().to_owned()))
            .filter(|pid| !pid.is_empty())
            .unwrap_or_else(|| self.child.id().to_string());
        let _ = Command::new("kill").args(["-INT", &server]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

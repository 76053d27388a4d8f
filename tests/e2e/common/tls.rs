//! A test certificate authority and the certificates it signs, made with the openssl CLI.

/// A test CA and certificates it signed, made with the openssl CLI.
pub struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        let ca = TestCa { dir: tempfile::tempdir().unwrap() };
        ca.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=hivemind test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        ca
    }

    pub fn path(&self, file: &str) -> String {
        self.dir.path().join(file).to_str().unwrap().to_string()
    }

    fn openssl(&self, args: &[&str]) {
        let out = std::process::Command::new("openssl").args(args).current_dir(self.dir.path()).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A certificate for `host` and its key: (cert.pem, key.pem).
    pub fn issue(&self, host: &str) -> (String, String) {
        self.issue_for(host, &format!("DNS:{host}"))
    }

    /// A certificate named `name` for the subject alternative names `sans`
    /// (`DNS:localhost,IP:127.0.0.1`), and its key.
    pub fn issue_for(&self, name: &str, sans: &str) -> (String, String) {
        self.issue_valid_for(name, sans, "30")
    }

    /// A certificate for `host` that expires as it is made (valid for 0 days).
    pub fn issue_expired(&self, host: &str) -> (String, String) {
        self.issue_valid_for(&format!("expired-{host}"), &format!("DNS:{host}"), "0")
    }

    fn issue_valid_for(&self, name: &str, sans: &str, days: &str) -> (String, String) {
        let host = name;
        let ext = format!("{host}.ext");
        std::fs::write(
            self.dir.path().join(&ext),
            format!("subjectAltName={sans}\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n"),
        )
        .unwrap();
        let (key, csr, cert) = (format!("{host}.key"), format!("{host}.csr"), format!("{host}.pem"));
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={host}"),
            "-keyout",
            &key,
            "-out",
            &csr,
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            days,
            "-out",
            &cert,
            "-extfile",
            &ext,
        ]);
        (self.path(&cert), self.path(&key))
    }
}

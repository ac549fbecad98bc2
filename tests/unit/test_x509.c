/*
 * tests/unit/test_x509.c — kg_x509_summary() (dissect/dissect_x509.c).
 *
 * Usage: test_x509 OPENSSL_CLI SERVER_DER. The certificates are made at
 * test time with the openssl command-line tool in a temporary directory: a
 * self-signed one with a UTF-8 DN and a fixed serial, a CA and a leaf it
 * signed, a leaf whose subject equals its issuer's but signed by the CA (a
 * name match alone must not read as self-signed), and one with a DN too
 * long for the summary. Digests and DNs are compared with what the CLI
 * prints. The repository's pcaps/src/server.der is checked against fixed
 * values. Every prefix of a certificate and random bytes must fail cleanly.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/kg_common.h"
#include "dissect/dissect_parsers.h"
#include "kg_test.h"

static const char *openssl_cli;
static char tmpdir[256];

/* Runs argv (no shell); stdout into out (cap, NUL-terminated) when out is
 * given. Returns the exit status, or -1. */
static int run(char *const argv[], char *out, size_t cap)
{
    int fd[2];
    if (out && pipe(fd) < 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (out) {
            dup2(fd[1], 1);
            close(fd[0]);
            close(fd[1]);
        } else if (null >= 0) {
            dup2(null, 1);
        }
        if (null >= 0) dup2(null, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    size_t n = 0;
    if (out) {
        close(fd[1]);
        ssize_t r;
        while ((r = read(fd[0], out + n, cap - 1 - n)) > 0 && n + (size_t)r < cap - 1)
            n += (size_t)r;
        if (r > 0) n += (size_t)r;
        out[n] = '\0';
        close(fd[0]);
    }
    int st;
    if (waitpid(pid, &st, 0) < 0) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *path_in_tmp(const char *name)
{
    static char buf[8][400];
    static int i;
    char *p = buf[i++ % 8];
    snprintf(p, 400, "%s/%s", tmpdir, name);
    return p;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *b = malloc(1 << 20);
    *len = b ? fread(b, 1, 1 << 20, f) : 0;
    fclose(f);
    return b;
}

/* "SHA1 Fingerprint=AA:BB:..." from the CLI, as lower-case plain hex. */
static void cli_fingerprint(const char *der, const char *alg, char *hex, size_t cap)
{
    char out[512];
    char *argv[] = {(char *)openssl_cli, "x509",   "-inform",      "DER",       "-in",
                    (char *)der,         "-noout", "-fingerprint", (char *)alg, NULL};
    hex[0] = '\0';
    if (run(argv, out, sizeof(out)) != 0) return;
    const char *eq = strchr(out, '=');
    size_t n = 0;
    for (const char *c = eq ? eq + 1 : ""; *c && *c != '\n' && n + 1 < cap; c++) {
        if (*c == ':') continue;
        hex[n++] = (char)(*c >= 'A' && *c <= 'F' ? *c - 'A' + 'a' : *c);
    }
    hex[n] = '\0';
}

/* "subject=C=JP, O=..., CN=..." from the CLI in the same one-line form. */
static void cli_name(const char *der, const char *which, char *name, size_t cap)
{
    char out[4096];
    char *argv[] = {(char *)openssl_cli,
                    "x509",
                    "-inform",
                    "DER",
                    "-in",
                    (char *)der,
                    "-noout",
                    (char *)which,
                    "-nameopt",
                    "utf8,sep_comma_plus_space,esc_2253,esc_ctrl",
                    NULL};
    name[0] = '\0';
    if (run(argv, out, sizeof(out)) != 0) return;
    const char *eq = strchr(out, '=');
    if (!eq) return;
    kg_strlcpy(name, eq + 1, cap);
    name[strcspn(name, "\n")] = '\0';
}

static bool iso_time(const char *t)
{
    static const char pat[] = "dddd-dd-ddTdd:dd:dd";
    if (strlen(t) != sizeof(pat) - 1) return false;
    for (size_t i = 0; i < sizeof(pat) - 1; i++) {
        if (pat[i] == 'd' ? (t[i] < '0' || t[i] > '9') : t[i] != pat[i]) return false;
    }
    return true;
}

/* Summary of a DER file, plus cross-checks with the CLI. */
static int summarise(const char *der_path, struct kg_x509_info *info)
{
    size_t len = 0;
    uint8_t *der = read_file(der_path, &len);
    CHECK(der != NULL && len > 0);
    if (!der) return -1;
    int rc = kg_x509_summary(der, len, info);
    free(der);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0) return rc;
    char hex[200], name[4096];
    cli_fingerprint(der_path, "-sha1", hex, sizeof(hex));
    CHECK_EQ_STR(info->sha1, hex);
    cli_fingerprint(der_path, "-sha256", hex, sizeof(hex));
    CHECK_EQ_STR(info->sha256, hex);
    if (!info->dn_truncated) {
        cli_name(der_path, "-subject", name, sizeof(name));
        CHECK_EQ_STR(info->subject, name);
        cli_name(der_path, "-issuer", name, sizeof(name));
        CHECK_EQ_STR(info->issuer, name);
    }
    CHECK(iso_time(info->not_before));
    CHECK(iso_time(info->not_after));
    return 0;
}

static void test_server_der(const char *path)
{
    size_t len = 0;
    uint8_t *der = read_file(path, &len);
    CHECK(der != NULL);
    if (!der) return;
    struct kg_x509_info x;
    CHECK_EQ_INT(kg_x509_summary(der, len, &x), 0);
    /* Values as `openssl x509 -inform der -in pcaps/src/server.der -noout
     * -subject -issuer -serial -dates -fingerprint` prints them. */
    CHECK_EQ_STR(x.subject, "O=Kagami Test, CN=login.tls-bad.example");
    CHECK_EQ_STR(x.issuer, "O=Kagami Test, CN=login.tls-bad.example");
    CHECK_EQ_STR(x.subject_cn, "login.tls-bad.example");
    CHECK_EQ_STR(x.serial, "49:A9:A7:58:18:23:98:2E:28:14:1B:42:82:F9:CC:61:4C:54:18:F5");
    CHECK_EQ_STR(x.not_before, "2026-11-25T23:11:17");
    CHECK_EQ_STR(x.not_after, "2036-11-22T23:11:17");
    CHECK_EQ_STR(x.sha1, "4efb9c82530d47c530e8f95679dbf80bffcc5c53");
    CHECK_EQ_STR(x.sha256, "2d1095c4992c8fd5cf76b70039505cf8f767c3b15c04fd3a69a9426f79e1b380");
    CHECK(x.self_signed);
    CHECK(!x.dn_truncated);

    /* Every proper prefix fails and leaves *out zeroed; so does a NULL. */
    int bad = 0;
    for (size_t k = 0; k < len; k++) {
        uint8_t *p = malloc(k ? k : 1);
        if (k) memcpy(p, der, k);
        memset(&x, 0x55, sizeof(x));
        int rc = kg_x509_summary(k ? p : NULL, k, &x);
        if (rc != KG_ERR_PARSE || x.sha1[0] != '\0' || x.self_signed) bad++;
        free(p);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(kg_x509_summary(der, len, NULL), KG_ERR_INVAL);

    /* Flipped bytes: never a crash; a signature byte flipped keeps it
     * parseable but no longer self-signed. */
    uint64_t s = 0x1234567;
    for (int it = 0; it < 3000; it++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        uint8_t *p = malloc(len);
        memcpy(p, der, len);
        p[s % len] ^= (uint8_t)(1u << (s >> 32) % 8);
        (void)kg_x509_summary(p, len, &x);
        free(p);
    }
    uint8_t *p = malloc(len);
    memcpy(p, der, len);
    p[len - 10] ^= 0x01; /* inside the signature BIT STRING at the end */
    CHECK_EQ_INT(kg_x509_summary(p, len, &x), 0);
    CHECK(!x.self_signed);
    CHECK(strcmp(x.sha1, "4efb9c82530d47c530e8f95679dbf80bffcc5c53") != 0);
    free(p);
    free(der);
}

static bool gen(char *const argv[])
{
    int rc = run(argv, NULL, 0);
    if (rc != 0) fprintf(stderr, "  %s %s ... exited %d\n", argv[1], argv[2], rc);
    CHECK_EQ_INT(rc, 0);
    return rc == 0;
}

static void test_generated(void)
{
    char *const cli = (char *)openssl_cli;
    /* 1. Self-signed, EC P-256, UTF-8 organisation, fixed serial. */
    char *self[] = {cli,
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-keyout",
                    path_in_tmp("self.key"),
                    "-outform",
                    "DER",
                    "-out",
                    path_in_tmp("self.der"),
                    "-subj",
                    "/C=JP/O=Kagami T\xc3\xabst/CN=self.example",
                    "-utf8",
                    "-days",
                    "30",
                    "-set_serial",
                    "0x0102AB",
                    NULL};
    struct kg_x509_info x;
    if (gen(self) && summarise(path_in_tmp("self.der"), &x) == 0) {
        CHECK_EQ_STR(x.subject, "C=JP, O=Kagami T\xc3\xabst, CN=self.example");
        CHECK_EQ_STR(x.issuer, x.subject);
        CHECK_EQ_STR(x.subject_cn, "self.example");
        CHECK_EQ_STR(x.serial, "01:02:AB");
        CHECK(x.self_signed);
    }

    /* 2. A CA (RSA) and a leaf it signs. */
    char *ca[] = {cli,        "req",
                  "-x509",    "-newkey",
                  "rsa:2048", "-nodes",
                  "-keyout",  path_in_tmp("ca.key"),
                  "-out",     path_in_tmp("ca.pem"),
                  "-subj",    "/O=Kagami CA/CN=Kagami Test Root",
                  "-days",    "30",
                  NULL};
    char *csr[] = {cli,        "req",
                   "-new",     "-newkey",
                   "rsa:2048", "-nodes",
                   "-keyout",  path_in_tmp("leaf.key"),
                   "-out",     path_in_tmp("leaf.csr"),
                   "-subj",    "/CN=leaf.example",
                   NULL};
    char *sign[] = {cli,
                    "x509",
                    "-req",
                    "-in",
                    path_in_tmp("leaf.csr"),
                    "-CA",
                    path_in_tmp("ca.pem"),
                    "-CAkey",
                    path_in_tmp("ca.key"),
                    "-set_serial",
                    "7",
                    "-days",
                    "10",
                    "-outform",
                    "DER",
                    "-out",
                    path_in_tmp("leaf.der"),
                    NULL};
    if (gen(ca) && gen(csr) && gen(sign) && summarise(path_in_tmp("leaf.der"), &x) == 0) {
        CHECK_EQ_STR(x.subject, "CN=leaf.example");
        CHECK_EQ_STR(x.issuer, "O=Kagami CA, CN=Kagami Test Root");
        CHECK_EQ_STR(x.serial, "07");
        CHECK(!x.self_signed);
    }

    /* 3. Subject equal to the issuer's name, but signed by the CA's key. */
    char *csr2[] = {cli,
                    "req",
                    "-new",
                    "-key",
                    path_in_tmp("leaf.key"),
                    "-out",
                    path_in_tmp("twin.csr"),
                    "-subj",
                    "/O=Kagami CA/CN=Kagami Test Root",
                    NULL};
    char *sign2[] = {cli,
                     "x509",
                     "-req",
                     "-in",
                     path_in_tmp("twin.csr"),
                     "-CA",
                     path_in_tmp("ca.pem"),
                     "-CAkey",
                     path_in_tmp("ca.key"),
                     "-set_serial",
                     "8",
                     "-days",
                     "10",
                     "-outform",
                     "DER",
                     "-out",
                     path_in_tmp("twin.der"),
                     NULL};
    if (gen(csr2) && gen(sign2) && summarise(path_in_tmp("twin.der"), &x) == 0) {
        CHECK_EQ_STR(x.subject, x.issuer);
        CHECK(!x.self_signed);
    }

    /* 4. A DN longer than the summary holds: cut, flagged, still a prefix. */
    char subj[2048];
    size_t n = 0;
    for (int i = 0; i < 24; i++)
        n += (size_t)snprintf(subj + n, sizeof(subj) - n, "/OU=unit-%02d-%s", i,
                              "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz");
    char *longdn[] = {cli,
                      "req",
                      "-x509",
                      "-key",
                      path_in_tmp("leaf.key"),
                      "-outform",
                      "DER",
                      "-out",
                      path_in_tmp("long.der"),
                      "-subj",
                      subj,
                      "-days",
                      "30",
                      NULL};
    if (gen(longdn) && summarise(path_in_tmp("long.der"), &x) == 0) {
        CHECK(x.dn_truncated);
        CHECK(strlen(x.subject) <= KG_X509_DN_MAX - 1 && strlen(x.subject) > KG_X509_DN_MAX - 80);
        CHECK_EQ_INT(strncmp(x.subject, "OU=unit-00-abc", 14), 0);
        CHECK_EQ_STR(x.subject_cn, "");
        CHECK(x.self_signed);
    }
}

static void test_garbage(void)
{
    struct kg_x509_info x;
    uint8_t b[512];
    uint64_t s = 99;
    int bad = 0;
    for (int it = 0; it < 2000; it++) {
        size_t len = 1 + it % sizeof(b);
        for (size_t i = 0; i < len; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            b[i] = (uint8_t)(s >> 56);
        }
        if (it % 2) {
            b[0] = 0x30; /* SEQUENCE, a believable start */
            b[1] = 0x82;
        }
        if (kg_x509_summary(b, len, &x) != KG_ERR_PARSE || x.subject[0] != '\0') bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_x509 OPENSSL_CLI SERVER_DER\n");
        return 2;
    }
    openssl_cli = argv[1];
    KG_TEST_RUN(test_garbage);
    {
        int before = kg_test_failed;
        test_server_der(argv[2]);
        printf("%s test_server_der\n", kg_test_failed == before ? "ok  " : "FAIL");
    }
    if (access(openssl_cli, X_OK) != 0) {
        printf("note: no openssl command-line tool at \"%s\": generated certificates not tested\n",
               openssl_cli);
    } else {
        snprintf(tmpdir, sizeof(tmpdir), "%s/kg_x509_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (mkdtemp(tmpdir) == NULL) {
            perror("mkdtemp");
            return 2;
        }
        KG_TEST_RUN(test_generated);
        static const char *const files[] = {"self.key", "self.der", "ca.key",   "ca.pem",
                                            "leaf.key", "leaf.csr", "leaf.der", "twin.csr",
                                            "twin.der", "long.der", "ca.srl"};
        for (size_t i = 0; i < KG_ARRAY_LEN(files); i++)
            unlink(path_in_tmp(files[i]));
        rmdir(tmpdir);
    }
    KG_TEST_MAIN_END();
}

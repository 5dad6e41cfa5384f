"""OTP runtimes built from source with zig: Debian's source packages, a static OpenSSL, phases
with stamps in a work dir (resumable), the result a normalized OTP root like any source's."""

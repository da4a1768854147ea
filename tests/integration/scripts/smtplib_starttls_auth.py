#!/usr/bin/env python3
# Python's smtplib against the relay: STARTTLS with the certificate verified
# against the test CA, then AUTH (PLAIN or LOGIN, as smtplib picks it), then
# one message. Prints what the relay said; exit status 0 only if all went well.
# Usage: smtplib_starttls_auth.py HOST PORT CA_FILE USER PASSWORD FROM TO
import smtplib
import ssl
import sys

host, port, ca_file, user, password, sender, rcpt = sys.argv[1:8]
context = ssl.create_default_context(cafile=ca_file)
with smtplib.SMTP(host, int(port), local_hostname="python.test", timeout=20) as s:
    s.ehlo()
    print("before-tls auth offered:", s.has_extn("auth"))
    code, text = s.starttls(context=context)
    print("starttls:", code, text.decode())
    print("tls version:", s.sock.version())
    s.ehlo()
    print("after-tls auth:", s.esmtp_features.get("auth", "").strip())
    code, text = s.login(user, password)
    print("login:", code, text.decode())
    refused = s.sendmail(sender, [rcpt], "Subject: from smtplib\r\n\r\nhello over TLS\r\n")
    print("refused:", refused)

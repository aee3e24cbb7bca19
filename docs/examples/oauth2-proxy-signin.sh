#!/usr/bin/env bash
# Signs an address in through oauth2-proxy and Latchkey, as a browser would,
# with curl: Latchkey on http://localhost:8080 without SMTP_URL (the link is
# read from its log: the file LATCHKEY_LOG names, lk.log by default), the proxy on http://localhost:4180 (see
# docs/applications.md). Usage: oauth2-proxy-signin.sh EMAIL
set -euo pipefail
EMAIL=${1:-ops@example.com}
J=$(mktemp); B=$(mktemp); LOG=${LATCHKEY_LOG:-lk.log}; H=(-s -b "$J" -c "$J" -o /dev/null -w '%{http_code} %{redirect_url}\n')
hdr() { curl -s -b "$J" -c "$J" -D - -o "$B" "$@" ; }
loc() { grep -i '^location:' | tr -d '\r' | cut -d' ' -f2; }
start=$(hdr "http://localhost:4180/oauth2/start?rd=%2F" | loc)
echo "proxy sends to: ${start%%\?*}"
signin=$(hdr "$start" | loc)
echo "latchkey sends to: ${signin%%\?*}"
next=$(python3 -c "import sys,urllib.parse as u; print(u.parse_qs(u.urlparse(sys.argv[1]).query)['next'][0])" "$signin")
before=$(grep -c 'signin/link?token=' "$LOG" || true)
curl "${H[@]}" -H 'Origin: http://localhost:8080' -H 'Sec-Fetch-Site: same-origin' \
  --data-urlencode "email=$EMAIL" --data-urlencode "next=$next" http://localhost:8080/signin/email
sleep 1
link=$(grep -o 'http://localhost:8080/signin/link?token=[A-Za-z0-9_-]*' "$LOG" | tail -1)
token=${link#*token=}
after=$(hdr -H 'Origin: http://localhost:8080' -H 'Sec-Fetch-Site: same-origin' --data-urlencode "token=$token" http://localhost:8080/signin/link | loc)
echo "after the link: ${after%%\?*}"
code=$(curl -s -b "$J" -c "$J" -o "$B" -w '%{http_code}' "http://localhost:8080$after")
if grep -q 'name="request"' "$B"; then
  req=$(grep -o 'name="request" value="[^"]*"' "$B" | sed 's/.*value="//; s/"$//')
  back=$(hdr -H 'Origin: http://localhost:8080' -H 'Sec-Fetch-Site: same-origin' --data-urlencode "request=$req" -d decision=allow http://localhost:8080/oauth2/authorize | loc)
else
  back=$(curl -s -b "$J" -c "$J" -o /dev/null -w '%{redirect_url}' "http://localhost:8080$after")
fi
echo "back to the proxy: ${back%%\?*} ($(echo "$back" | grep -o 'error=[a-z_]*' || echo code))"
final=$(curl -s -b "$J" -c "$J" -o /dev/null -w '%{http_code} %{redirect_url}' "$back")
echo "callback: $final"
echo "the application: $(curl -s -b "$J" -c "$J" -o /dev/null -w '%{http_code}' http://localhost:4180/)"
echo "whoami: $(curl -s -b "$J" http://localhost:4180/oauth2/userinfo)"

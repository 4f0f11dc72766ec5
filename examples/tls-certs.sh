#!/bin/sh
# Makes a private CA and a server certificate it signs, for a tls_server
# relay (or stunnel server) and the tls_client relays (or stunnel clients)
# that connect to it:
#
#   examples/tls-certs.sh NAME [DIR]
#
# NAME is the DNS name clients will ask for (their server_name). Writes to
# DIR (default: the current directory), readable by the owner only:
#   ca.pem      the CA certificate: tls_client's ca_file (copy it to clients)
#   ca.key      the CA's key: only needed to sign more certificates; keep it offline
#   NAME.pem    the server certificate: tls_server's cert_file
#   NAME.key    its key: tls_server's key_file
# DAYS (default 825) sets the server certificate's lifetime; the CA's is 10 years.
set -eu
name=${1:?usage: tls-certs.sh NAME [DIR]}
dir=${2:-.}
days=${DAYS:-825}
cd "$dir"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout ca.key -out ca.pem -days 3650 -subj "/CN=$name CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$name.key" -out "$name.csr" -subj "/CN=$name"
printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n' \
    "$name" >"$name.ext"
openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
    -days "$days" -extfile "$name.ext" -out "$name.pem"
rm -f "$name.csr" "$name.ext"
echo "tls_server: cert_file $dir/$name.pem, key_file $dir/$name.key"
echo "tls_client: ca_file $dir/ca.pem, server_name $name"

#!/bin/sh
# Writes carillon(1) to standard output from the binary's own `carillon --help`, so the manual page
# cannot drift from the settings table: deploy/debian/manpage.sh BUILD/carillon > carillon.1
set -e
bin=$1
version=$("$bin" --version | sed 's/^carillon //')
cat <<EOF
.TH CARILLON 1 "" "carillon $version" "User Commands"
.SH NAME
carillon \- self-hosted chat gateway speaking the Amazon Chime SDK Messaging and Identity APIs
.SH SYNOPSIS
.B carillon
[\fB\-\-config\fR \fIFILE\fR] [\fB\-\-\fIsetting\fR \fIVALUE\fR ...] \fICOMMAND\fR
.SH DESCRIPTION
.nf
EOF
"$bin" --help | sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\([.']\)/\\\\\&\1/"
cat <<EOF
.fi
.SH FILES
.TP
.I /etc/carillon/carillon.conf
every setting, commented out, with its default (\fBcarillon config \-\-defaults\fR)
.TP
.I /var/lib/carillon
the embedded PostgreSQL cluster and the generated master key (the systemd unit's state directory)
.SH SEE ALSO
.I /usr/share/doc/carillon/README.md,
.I /usr/share/doc/carillon/operations.md
EOF

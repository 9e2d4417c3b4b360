#!/usr/bin/python3
"""Prints the data records of an RFC 5655 IPFIX file as a JSON array, one object per record.

Usage: read_ipfix.py IESPEC_FILE IPFIX_FILE

Reads with python3-ipfix, the IANA and RFC 5103 (reverse) information models loaded, plus the enterprise
elements listed in IESPEC_FILE (podflow's). Values are made JSON-friendly: timestamps become milliseconds
since the epoch, addresses their text form, octet arrays hex. Each object also has "_message" (index of
the message the record came from) so a reader can tell messages apart.
"""

import datetime
import ipaddress
import json
import sys

import ipfix.ie
import ipfix.message

EPOCH = datetime.datetime(1970, 1, 1)


def plain(value):
    """A JSON-friendly form of a decoded value."""
    if isinstance(value, datetime.datetime):
        # Integer timedelta arithmetic: no float rounding of the milliseconds.
        return (value.replace(tzinfo=None) - EPOCH) // datetime.timedelta(milliseconds=1)
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return value


def main():
    spec_file, ipfix_file = sys.argv[1], sys.argv[2]
    ipfix.ie.use_iana_default()
    ipfix.ie.use_5103_default()
    ipfix.ie.use_specfile(spec_file)

    records = []
    buf = ipfix.message.MessageBuffer()
    with open(ipfix_file, "rb") as stream:
        index = 0
        while True:
            try:
                buf.read_message(stream)
            except EOFError:
                break
            for rec in buf.namedict_iterator():
                row = {name: plain(value) for name, value in rec.items()}
                row["_message"] = index
                records.append(row)
            index += 1
    json.dump(records, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()

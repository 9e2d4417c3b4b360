/* The read floor of bench/exporter-throughput.sh: reads a capture file with libpcap's pcap_next_ex, as
 * every exporter in that benchmark does, and does nothing else with the packets but count them and their
 * captured octets (so the loop cannot be optimised away). No flow meter reading the same file through
 * libpcap can use less CPU time than this.
 *
 * Build: cc -O2 -o pcap-read-floor bench/pcap-read-floor.c -lpcap
 * Usage: pcap-read-floor FILE.pcap   (prints "packets N captured_octets N")
 */
#include <pcap/pcap.h>
#include <stdio.h>

int main(int argc, char **argv) {
    char err[PCAP_ERRBUF_SIZE];
    struct pcap_pkthdr *h;
    const u_char *data;
    unsigned long long packets = 0, octets = 0;
    pcap_t *p;
    int rc;

    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE.pcap\n", argv[0]);
        return 2;
    }
    p = pcap_open_offline(argv[1], err);
    if (p == NULL) {
        fprintf(stderr, "pcap-read-floor: %s\n", err);
        return 1;
    }
    while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
        packets++;
        /* Touch the first octet, as any parser would, so the data is really brought in. */
        octets += h->caplen + (h->caplen > 0 ? data[0] & 1 : 0);
    }
    if (rc == PCAP_ERROR) {
        fprintf(stderr, "pcap-read-floor: %s\n", pcap_geterr(p));
        pcap_close(p);
        return 1;
    }
    pcap_close(p);
    printf("packets %llu captured_octets %llu\n", packets, octets);
    return 0;
}

#!/usr/bin/perl
# tests/scripts/make_test_mmdb.pl — writes two small MaxMind DB files for
# tests/unit/test_geoip.c: OUTDIR/country.mmdb (GeoLite2-Country layout:
# country.iso_code, registered_country.iso_code) and OUTDIR/asn.mmdb
# (GeoLite2-ASN layout: autonomous_system_number,
# autonomous_system_organization).
#
#   perl tests/scripts/make_test_mmdb.pl OUTDIR
#
# Needs MaxMind::DB::Writer (Debian: libmaxmind-db-writer-perl). Exits 77
# when it is missing, so that the test is reported as skipped.
#
# The data is made up for the test. Some entries sit in private and
# documentation ranges on purpose (remove_reserved_networks => 0): the
# sensor must not look those up even though the database has an answer.
# Keep in step with the expectations in tests/unit/test_geoip.c.
use strict;
use warnings;

my $outdir = shift @ARGV or die "usage: $0 OUTDIR\n";

eval { require MaxMind::DB::Writer::Tree; 1 } or do {
    print STDERR "skipped: Perl module MaxMind::DB::Writer is not installed "
      . "(Debian: apt-get install libmaxmind-db-writer-perl)\n";
    exit 77;
};

my %types = (
    country                        => 'map',
    registered_country             => 'map',
    iso_code                       => 'utf8_string',
    autonomous_system_number       => 'uint32',
    autonomous_system_organization => 'utf8_string',
);

sub new_tree {
    my ($type) = @_;
    return MaxMind::DB::Writer::Tree->new(
        ip_version               => 6,
        record_size              => 24,
        database_type            => $type,
        languages                => ['en'],
        description              => { en => "Kagami unit test ($type)" },
        map_key_type_callback    => sub { $types{ $_[0] } },
        remove_reserved_networks => 0,
    );
}

sub write_tree {
    my ($tree, $path) = @_;
    open my $fh, '>:raw', $path or die "$path: $!\n";
    $tree->write_tree($fh);
    close $fh or die "$path: $!\n";
}

my $country = new_tree('Kagami-Test-Country');
$country->insert_network('8.8.8.0/24',     { country => { iso_code => 'US' }, registered_country => { iso_code => 'US' } });
$country->insert_network('1.1.1.0/24',     { country => { iso_code => 'AU' } });
$country->insert_network('81.2.69.0/24',   { registered_country => { iso_code => 'GB' } });    # no country: the fallback
$country->insert_network('2001:4860::/32', { country => { iso_code => 'US' } });
$country->insert_network('2a00:1450::/32', { country => { iso_code => 'IE' } });
$country->insert_network('10.0.0.0/8',     { country => { iso_code => 'ZZ' } });    # private: never looked up
$country->insert_network('100.64.0.0/10',  { country => { iso_code => 'ZZ' } });
$country->insert_network('192.0.2.0/24',   { country => { iso_code => 'ZZ' } });
$country->insert_network('fc00::/7',       { country => { iso_code => 'ZZ' } });
$country->insert_network('2001:db8::/32',  { country => { iso_code => 'ZZ' } });
write_tree($country, "$outdir/country.mmdb");

my $asn = new_tree('Kagami-Test-ASN');
$asn->insert_network('8.8.8.0/24',     { autonomous_system_number => 15169, autonomous_system_organization => 'Google LLC' });
$asn->insert_network('2001:4860::/32', { autonomous_system_number => 15169, autonomous_system_organization => 'Google LLC' });
$asn->insert_network('1.1.1.0/24',     { autonomous_system_number => 13335, autonomous_system_organization => 'Cloudflare, Inc.' });
# UTF-8 organisation, and one longer than struct kg_geo holds (127 bytes).
$asn->insert_network('5.6.7.0/24',     { autonomous_system_number => 64496, autonomous_system_organization => "R\x{e9}seau \x{c9}tudiant" });
$asn->insert_network('5.6.8.0/24',     { autonomous_system_number => 64497, autonomous_system_organization => ("\x{e9}" x 100) });
$asn->insert_network('10.0.0.0/8',     { autonomous_system_number => 64512, autonomous_system_organization => 'private' });
write_tree($asn, "$outdir/asn.mmdb");

exit 0;

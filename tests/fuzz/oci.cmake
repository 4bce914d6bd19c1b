kiln_fuzzer(oci_ref LIBS kiln_oci)
kiln_fuzzer(oci_json LIBS kiln_oci)
kiln_fuzzer(oci_auth LIBS kiln_oci)

/* The assembler's .include, assembled from pieces: gas quotes lines of the file in errors. */
asm(".macro kml_inc what\n"
    ".\\what \"@PATH@\"\n"
    ".endm\n"
    "kml_inc include\n");

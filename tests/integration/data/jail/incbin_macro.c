/* The same with a .macro whose arguments are the halves of the directive. */
asm(".pushsection .rodata\n"
    ".macro kml_glue a, b\n"
    "\\a\\b \"@PATH@\"\n"
    ".endm\n"
    "kml_glue .inc, bin\n"
    ".popsection\n");

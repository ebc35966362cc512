/* C23 #embed (gcc 15+; gcc 12 refuses the directive). */
static const unsigned char kml_embedded[] __used = {
#embed "@PATH@"
};

/* liid: entry point. */
int main(void)
{
        return 0;
}
